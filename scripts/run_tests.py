"""Run the test suite (the README's test command calls this through `make test`).

pytest exits with 5 when it collected no tests (e.g. a `-k` that matches nothing); that is
reported plainly and not treated as a failure. Every other non-zero code fails.
"""

from __future__ import annotations

import subprocess
import sys

code = subprocess.call([sys.executable, "-m", "pytest", *sys.argv[1:]])
if code == 5:
    print("pytest collected no tests: nothing was checked.", file=sys.stderr)
    code = 0
sys.exit(code)
