"""`python -m benchmarks [--quick] [--only NAME ...]`: see `benchmarks/run_all.py`."""

import sys

from benchmarks.run_all import main

sys.exit(main())
