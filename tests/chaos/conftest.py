"""The chaos suite is a package at the repository root (run as `python -m chaos`), not an
installed one: its tests import it from there."""

import sys

from shopdev.testing import repo_root

if str(repo_root()) not in sys.path:
    sys.path.insert(0, str(repo_root()))
