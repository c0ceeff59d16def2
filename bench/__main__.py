"""``python -m bench``: run W1..W5 (see ``bench/run_all.py``)."""

import sys

from bench.run_all import main

sys.exit(main())
