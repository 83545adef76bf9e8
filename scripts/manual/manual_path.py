"""The manual path on the embedded demo, timed step by step (liteship/bench/manual/manual_path.py).

    python scripts/manual/manual_path.py --work /tmp/manual
"""

import sys

from liteship.bench.manual.manual_path import main

if __name__ == "__main__":
    sys.exit(main())
