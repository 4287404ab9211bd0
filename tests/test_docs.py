"""The docs show what ormagic prints: every example block is a saved notebook output, and
every relative link and picture points at something."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from processes import python_child

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from docs import PAGES, differences, examples, rewritten  # noqa: E402
from notebooks import EXAMPLES, clean, run_notebook, scratch_copy  # noqa: E402


def test_every_example_block_is_the_output_of_its_notebook_cell() -> None:
    # fails after a notebook was re-run but not `make docs`, when a page names a tag no
    # cell has, or when a tagged cell is shown nowhere
    assert list(differences()) == []


def test_a_block_is_filled_with_the_cell_output_a_part_of_it_or_left_alone() -> None:
    known = {"status": "model: m\nconversations: 1\nserver: s", "code": "a\n```python\nx\n```"}
    page = (
        "Intro.\n<!-- docs:status lines=2 -->\n```\nold\n```\n"
        "<!-- docs:status last=1 -->\n```text\n```\n"
        "<!-- docs:code -->\n```\nstale\n```\n"
        "<!-- docs:gone -->\n```\nkept\n```\nEnd.\n"
    )
    text, missing = rewritten(page, known)
    assert text == (
        "Intro.\n<!-- docs:status lines=2 -->\n```\nmodel: m\nconversations: 1\n```\n"
        "<!-- docs:status last=1 -->\n```text\nserver: s\n```\n"
        "<!-- docs:code -->\n````\na\n```python\nx\n```\n````\n"  # a longer fence
        "<!-- docs:gone -->\n```\nkept\n```\nEnd.\n"
    )
    assert missing == ["gone"]
    assert rewritten(text, known) == (text, ["gone"])  # filled once, stable after


def test_an_example_is_its_cell_output_as_a_reader_sees_it() -> None:
    shown = examples()
    assert shown["reset"] == "Conversation 'sales' reset."
    assert shown["budget"].startswith("UsageError: Budget reached: this session spent $")
    assert shown["tool-call"].splitlines()[1].startswith('⚙ describe_variable(name="sales")')


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_the_slug_is_githubs() -> None:
    heading = "One prompt over every row: `ormagic.map` and `%%chat --each`"
    assert _slug(heading) == "one-prompt-over-every-row-ormagicmap-and-chat---each"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_picture_points_at_something(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (file.suffix == ".md" and anchor not in {"", *_anchors(file)}):
            broken.append(target)
    assert broken == []


@pytest.mark.timeout(300)
def test_the_examples_notebook_still_runs_and_fails_only_where_it_means_to() -> None:
    committed = nbformat.read(EXAMPLES, as_version=4)
    workdir = scratch_copy()
    try:
        with FakeOpenRouter(demo=True) as fake:
            env = {
                "OPENROUTER_API_KEY": fake.api_key,
                "OPENROUTER_BASE_URL": fake.base_url,
                "ORMAGIC_CACHE_DIR": str(workdir / ".cache"),
            }
            fresh = clean(run_notebook(EXAMPLES.name, workdir, env))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def kinds(notebook: Any) -> list[list[str]]:
        code = [c for c in notebook.cells if c.cell_type == "code"]
        return [[o.output_type for o in c.outputs] for c in code]

    assert kinds(fresh) == kinds(committed)  # the same outputs, in the same order

    def failed(output: Any) -> bool:  # a traceback, or IPython's one-line UsageError
        return output.output_type == "error" or "UsageError" in output.get("text", "")

    failing = [
        c.source.splitlines()[0]
        for c in fresh.cells
        if c.cell_type == "code" and any(failed(o) for o in c.outputs)
    ]
    assert failing == ["%%chat -c budget", "labels = ormagic.map("]
    assert fake.api_key not in nbformat.writes(fresh)


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)


def test_the_error_tree_in_the_docs_is_the_one_in_the_code() -> None:
    import ormagic.errors

    code_tree = (ormagic.errors.__doc__ or "").split("::\n\n", 1)[1].rstrip()
    code_tree = "\n".join(line[4:] for line in code_tree.splitlines())
    page = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    assert f"```\n{code_tree}\n```" in page


@pytest.mark.parametrize(
    ("page", "block"), [("docs/python-api.md", 0), ("README.md", 1)], ids=["python-api", "readme"]
)
def test_a_python_example_runs_as_written_in_a_plain_interpreter(
    fake_openrouter: FakeOpenRouter, page: str, block: int
) -> None:
    # the examples a newcomer pastes into a script, run as they are, against the fake
    code = _python_blocks(ROOT / page)[block]
    assert "ormagic.ask(" in code
    fake_openrouter.enqueue(
        StreamReply(text="A p-value is a probability.", provider="OpenAI"),
        StreamReply(text="A range of plausible values.", provider="OpenAI"),
        StreamReply(text="Une plage de valeurs plausibles.", provider="OpenAI"),
    )
    env = {
        **os.environ,
        "OPENROUTER_API_KEY": fake_openrouter.api_key,
        "OPENROUTER_BASE_URL": fake_openrouter.base_url,
        "PYTHONPATH": str(ROOT),
    }
    result = python_child("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("A p-value is a probability.")
    if page == "docs/python-api.md":
        assert result.stdout.endswith("Une plage de valeurs plausibles.")
        requests = fake_openrouter.chat_requests()
        assert [r.body["model"] for r in requests] == ["openai/gpt-5-nano"] * 3
        assert [r.body["messages"][-1]["content"] for r in requests] == [
            "In one sentence: what is a p-value?",
            "And a confidence interval?",
            "Now in French.",
        ]
