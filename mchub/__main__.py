"""``python -m mchub`` is the same as the ``mchub`` command."""

from mchub.cli import main

raise SystemExit(main())
