"""``python -m encompass_ds4xxx.smclisim ADDR -c "…;"``: the simulator as SMcli."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
