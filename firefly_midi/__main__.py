from firefly_midi.cli import main

raise SystemExit(main())
