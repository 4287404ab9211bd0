"""Put real outputs into the docs: every example output comes from a run, not a keyboard.

    .venv/bin/python scripts/docs.py           # check: exit 1 and say where the docs differ
    .venv/bin/python scripts/docs.py --write   # rewrite the example blocks from the notebooks

A cell of ``notebooks/*.ipynb`` or ``docs/examples.ipynb`` tagged ``docs:NAME`` is an
example. In ``README.md`` and ``docs/*.md``, a line ``<!-- docs:NAME -->`` (or
``<!-- docs:NAME lines=N -->`` for its first N lines, ``last=N`` for its last N) is
followed by a fenced block holding that cell's output as a user reads it (``text/plain``,
printed text, errors as their last line). ``make notebooks`` runs the notebooks against
the fake server's demo answers, then ``make docs`` (this script with ``--write``) copies
their outputs here; the test suite checks that the docs and the committed notebooks agree.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [*sorted((ROOT / "notebooks").glob("*.ipynb")), ROOT / "docs" / "examples.ipynb"]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TAG = "docs:"
MARKER = re.compile(
    r"^<!-- docs:([\w-]+)(?: (lines|last)=(\d+))? -->\n(`{3,})([^\n]*)\n(.*?)^\4[ \t]*$",
    re.M | re.S,
)


def output_text(output: Mapping[str, Any]) -> str:
    """One output as a user reads it: printed text, ``text/plain``, an error's last line."""
    kind = output.get("output_type")
    if kind == "stream":
        return str(output.get("text", "")).rstrip("\n")
    if kind == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    text = output.get("data", {}).get("text/plain", "")
    return str("".join(text) if isinstance(text, list) else text).rstrip("\n")


def examples() -> dict[str, str]:
    """Every tagged cell's output text, by name."""
    found: dict[str, str] = {}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            for tag in cell.get("metadata", {}).get("tags", ()):
                if tag.startswith(TAG):
                    texts = (output_text(o) for o in cell.get("outputs", ()))
                    found[tag[len(TAG) :]] = "\n".join(t for t in texts if t)
    return found


def rewritten(text: str, known: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with every example block filled in, and the names it uses that no cell has."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name, part, count, fence, info = match.group(1, 2, 3, 4, 5)
        if name not in known:
            missing.append(name)
            return match.group(0)
        body = known[name]
        if part is not None:
            lines = body.split("\n")
            body = "\n".join(lines[: int(count)] if part == "lines" else lines[-int(count) :])
        runs = re.findall(r"^`{3,}", body, re.M)  # a fence inside: the block's is longer
        fence = "`" * max([len(fence), *(len(run) + 1 for run in runs)])
        head = f"<!-- docs:{name}{f' {part}={count}' if part else ''} -->"
        return f"{head}\n{fence}{info}\n{body}\n{fence}"

    return MARKER.sub(fill, text), missing


def differences() -> Iterator[str]:
    """Where a page's examples differ from the notebooks' outputs (nothing when agreed)."""
    known = examples()
    used: set[str] = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        used.update(m.group(1) for m in MARKER.finditer(text))
        new, missing = rewritten(text, known)
        for name in missing:
            yield f"{page.relative_to(ROOT)}: no notebook cell is tagged docs:{name}"
        if new != text:
            yield f"{page.relative_to(ROOT)}: examples differ from the notebooks' outputs"
    for name in sorted(set(known) - used):
        yield f"docs:{name} is tagged in a notebook but shown nowhere"


def write() -> None:
    known = examples()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        new, missing = rewritten(text, known)
        if missing:
            raise SystemExit(f"{page}: no notebook cell is tagged docs:{', '.join(missing)}")
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"updated {page.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the example blocks")
    args = parser.parse_args(argv)
    if args.write:
        write()
        return 0
    problems = list(differences())
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
