"""Run the test suite (the README's test command calls this through `make test`).

pytest exits with 5 when it collected no tests. For the whole suite that means something
is broken (a collection error hidden by a filter, a misplaced test directory), so it fails.
When the caller picked tests on purpose (``-k``, ``-m`` or paths) and none matched, that
is reported plainly and not treated as a failure. Every other non-zero code fails.
"""

from __future__ import annotations

import os
import subprocess
import sys

NO_TESTS_COLLECTED = 5
_SELECTING = ("-k", "-m", "--deselect", "--lf", "--last-failed")


def selected_on_purpose(args: list[str]) -> bool:
    """True when the arguments pick some tests: a filter, or a test file or directory."""
    return any(
        arg in _SELECTING
        or arg.startswith(("-k", "-m"))
        or (not arg.startswith("-") and os.path.exists(arg.split("::")[0]))
        for arg in args
    )


def main(args: list[str]) -> int:
    code = subprocess.call([sys.executable, "-m", "pytest", *args])
    if code != NO_TESTS_COLLECTED:
        return code
    if selected_on_purpose(args):
        print("pytest collected no tests for this selection: nothing was checked.", file=sys.stderr)
        return 0
    print("pytest collected no tests at all: the suite is broken.", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
