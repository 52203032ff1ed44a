"""When a tuning run stops: its targets held on the hold-out seeds, or the user's limits are spent.

``--budget-s`` is a promise of time, not a cap beside others: the search goes on until the best
candidate holds (every target within its tolerance, or the fitness at most ``--stop-at``, on the search
seeds and on the hold-out seeds) or the budget is spent.  ``--generations`` caps the run only when
given.  With neither, the run stops once the best has not improved for ``STALL_GENERATIONS``
generations, or after ``DEFAULT_BUDGET_S``: the rule ``describe`` prints when the run starts.

A generation is only started when it, and a last check of the best on the hold-out seeds, fit in
what is left of the budget (judged by the generations so far), so a budget is kept, not overrun.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BUDGET_S = 600.0
STALL_GENERATIONS = 30


@dataclass(frozen=True)
class StopRule:
    budget_s: float | None = None
    generations: int | None = None  # in all, counting those of a resumed checkpoint
    stop_at: float | None = None
    stall_generations: int | None = None

    @classmethod
    def of(cls, budget_s: float | None = None, generations: int | None = None, stop_at: float | None = None) -> StopRule:
        """The user's limits, or the default rule when neither a budget nor a generation cap is given."""
        if budget_s is None and generations is None:
            return cls(DEFAULT_BUDGET_S, None, stop_at, STALL_GENERATIONS)
        return cls(budget_s, generations, stop_at, None)

    def describe(self) -> str:
        goal = "every target is met on the search and the hold-out seeds"
        if self.stop_at is not None:
            goal += f" (or the fitness is at most {self.stop_at:g} on both)"
        limits = []
        if self.budget_s is not None:
            limits.append(f"{self.budget_s:g} s have passed")
        if self.generations is not None:
            limits.append(f"{self.generations} generations have run")
        if self.stall_generations is not None:
            limits.append(f"the best has not improved for {self.stall_generations} generations")
        return f"stopping when {goal}, or when " + ", or ".join(limits)

    def out_of_generations(self, generation: int) -> bool:
        return self.generations is not None and generation >= self.generations

    def stalled(self, generations_since_best: int) -> bool:
        return self.stall_generations is not None and generations_since_best >= self.stall_generations

    def out_of_time(self, elapsed_s: float, next_generation_s: float, last_check_s: float) -> bool:
        """Whether another generation and the last hold-out check would overrun the budget."""
        return self.budget_s is not None and elapsed_s + next_generation_s + last_check_s > self.budget_s
