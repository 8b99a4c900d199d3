"""``python -m orchestrator.cli``: the same as ``opsctl``."""

from . import main

main()
