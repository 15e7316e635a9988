"""Make the template importable without installing it (it is a starting point, not a plugin)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
