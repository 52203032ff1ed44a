"""The pure numerical core: swarm state, model kernels, topologies and metrics."""

from firefly_midi.swarm.engine import Swarm

__all__ = ["Swarm"]
