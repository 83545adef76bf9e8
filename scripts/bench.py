"""Benchmarks of liteship on this machine: ``liteship bench`` (liteship/bench/).

    python scripts/bench.py --out bench.json --markdown bench.md
"""

import sys

from liteship.bench import main

if __name__ == "__main__":
    sys.exit(main())
