"""envcredit-ops orchestrator: the library behind the ``opsctl`` command."""

__version__ = "0.1.0"
