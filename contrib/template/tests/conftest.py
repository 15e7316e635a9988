"""Run the tests from a checkout without installing the plugin first (installed, it is found
either way)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
