"""Helpers shared by the tests, imported explicitly (``from helpers.common import REPO``).

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject.toml); ``conftest.py`` keeps only
fixtures and hooks.

* :mod:`helpers.common`: the repository, the venv, running ``opsctl``, small assertions;
* :mod:`helpers.home`: the test repository layout (catalog, playbooks, inventories) of ``opsctl_home``;
* :mod:`helpers.records`: change records made through the real code path (archive, records CLI);
* :mod:`helpers.lab`: the running lab (ad-hoc commands on its hosts, ``opsctl run --env lab``);
* :mod:`helpers.os_lab`: the OS maintenance lab tests (local repository, package versions).
"""
