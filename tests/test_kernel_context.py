"""Notebook context (issue 4) in a real kernel: what the fake OpenRouter receives.

Every test reads the user message of the request body the loopback fake received: the
context block, a blank line, then the prompt. The tests share one kernel, so each uses
its own conversation and starts with an "anchor" turn (``--context none``): the context of
that conversation's next turn is then exactly the cells the test ran after it, whatever
other tests ran before.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nbformat
import pytest
from kernel_support import Execution, Kernel, start_kernel

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

pytestmark = pytest.mark.timeout(180)

# Not shaped like any known key format, so only the exact-secret rule can redact it.
API_KEY = "orm-test-7Q2vX9kLp3Zr8Wm5Tn4"
SINCE_HEADER = (
    "Notebook context (cells executed since the last question; the user cannot see this block):"
)
RECENT_HEADER = (
    "Notebook context (the most recently executed cells; the user cannot see this block):"
)
FIX_PROMPT = (
    "The last cell failed. Explain the cause in one or two sentences, then give the "
    "corrected cell as a single fenced code block."
)
MARKER_RE = re.compile(r"… \[([\d,]+) characters left out\] …")


def run(kernel: Kernel, code: str) -> Execution:
    execution = kernel.execute(code)
    assert execution.status == "ok", execution.error_text()
    return execution


def count(execution: Execution) -> int:
    """The cell's execution count: the ``In [n]`` the context labels it with."""
    return int(execution.reply["content"]["execution_count"])


def anchor(kernel: Kernel, server: FakeOpenRouter, name: str) -> None:
    """A first turn of ``name`` that sends no context: later turns start after it."""
    run(kernel, f"%%chat -c {name} --context none\nStart.")
    server.reset()


def ask(kernel: Kernel, server: FakeOpenRouter, line: str, prompt: str) -> str:
    """Run ``%%chat LINE`` with ``prompt``; the user message content the fake received."""
    run(kernel, f"%%chat {line}\n{prompt}")
    [record] = server.chat_requests()
    server.reset()
    return str(record.body["messages"][-1]["content"])


def context_part(content: str, prompt: str) -> str:
    assert content.endswith(f"\n\n{prompt}")
    return content[: -len(prompt) - 2]


def code_cell(n: int, source: str, output: str | None = None) -> str:
    """A cell as the context block lays it out."""
    text = f"In [{n}]:\n```python\n{source}\n```"
    return text if output is None else f"{text}\nOut [{n}]:\n```\n{output}\n```"


# --------------------------------------------------------------------------- cells


def test_cells_since_the_previous_chat_with_outputs_and_results(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    anchor(kernel, server, "since")
    printed = run(kernel, "print('alpha', 6 * 7)")
    result = run(kernel, "'beta' * 2")
    both = run(kernel, "print('gamma')\n3 + 4")
    first = ask(kernel, server, "-c since", "What happened?")
    assert first == "\n\n".join(
        [
            SINCE_HEADER,
            code_cell(count(printed), "print('alpha', 6 * 7)", "alpha 42"),
            code_cell(count(result), "'beta' * 2", "'betabeta'"),
            code_cell(count(both), "print('gamma')\n3 + 4", "gamma\n7"),
            "What happened?",
        ]
    )
    # The cell right after a %%chat belongs to the next turn (the off-by-one that matters).
    right_after = run(kernel, "delta = 'right after'\nprint(delta)")
    later = run(kernel, "print('epsilon')")
    second = ask(kernel, server, "-c since", "And now?")
    assert second == "\n\n".join(
        [
            SINCE_HEADER,
            code_cell(count(right_after), "delta = 'right after'\nprint(delta)", "right after"),
            code_cell(count(later), "print('epsilon')", "epsilon"),
            "And now?",
        ]
    )
    assert "%%chat" not in first + second
    assert "alpha 42" not in second


def test_first_turn_sends_the_ten_most_recent_cells(kernel: Kernel, server: FakeOpenRouter) -> None:
    counts = [count(run(kernel, f"print('first-turn cell {i:02d}')")) for i in range(11)]
    content = ask(kernel, server, "-c firstturn", "Summarise.")
    expected = "\n\n".join(
        code_cell(n, f"print('first-turn cell {i:02d}')", f"first-turn cell {i:02d}")
        for i, n in enumerate(counts)
        if i > 0
    )
    assert content == f"{RECENT_HEADER}\n\n{expected}\n\nSummarise."
    assert "first-turn cell 00" not in content


def test_error_with_traceback_and_no_ansi_codes(kernel: Kernel, server: FakeOpenRouter) -> None:
    anchor(kernel, server, "errors")
    failed = kernel.execute("def explode():\n    return 1 / 0\n\nexplode()")
    assert failed.status == "error"
    # IPython colours its tracebacks; the raw error message carries ANSI codes.
    assert "\x1b[" in "".join(failed.of_type("error")[0]["content"]["traceback"])
    content = ask(kernel, server, "-c errors", "Walk me through that cell.")
    n = count(failed)
    assert f"Error in [{n}]:\n```\nZeroDivisionError: division by zero\n" in content
    assert f"Cell In[{n}], line 4\n" in content
    assert "----> 2     return 1 / 0\n" in content
    assert "\x1b" not in content


def test_error_question_gets_last_error_and_no_escape_codes_anywhere(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    anchor(kernel, server, "why")
    failed = kernel.execute("values = {'a': 1}\nvalues['b']")
    assert failed.status == "error"
    run(kernel, "%%chat -c why\nWhy did this fail?")
    [record] = server.chat_requests()
    content = record.body["messages"][-1]["content"]
    n = count(failed)
    assert f"Error in [{n}]: shown under Last error below" in content
    assert "Last error:\n```\nTraceback (most recent call last):\n" in content
    assert "    values['b']\n" in content
    assert "KeyError: 'b'\n```\n\nWhy did this fail?" in content
    assert b"\\u001b" not in record.raw_body  # JSON escapes ESC; the raw body has none
    assert all("\x1b" not in m["content"] for m in record.body["messages"])


# --------------------------------------------------------------------------- markdown


def write_notebook(path: Path, cells: list[tuple[str, str]]) -> None:
    notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    for kind, source in cells:
        if kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(source))  # type: ignore[no-untyped-call]
        else:
            notebook.cells.append(nbformat.v4.new_code_cell(source))  # type: ignore[no-untyped-call]
    nbformat.write(notebook, str(path))  # type: ignore[no-untyped-call]


CLEAN = "data = [1, 2, 300]\nclean = [v for v in data if v < 100]\nprint(clean)"
TOTAL = "print(sum(clean))"
NOTEBOOK = [
    ("markdown", "# Cleaning\nWe drop the outliers here."),
    ("code", CLEAN),
    ("markdown", "## Total"),
    ("code", TOTAL),
    ("code", "%%chat\nExplain the notebook."),
]


def expected_markdown_block(clean: int, total: int) -> str:
    return (
        f"{SINCE_HEADER}\n\n"
        "Markdown:\n```markdown\n# Cleaning\nWe drop the outliers here.\n```\n"
        f"{code_cell(clean, CLEAN, '[1, 2]')}\n\n"
        "Markdown:\n```markdown\n## Total\n```\n"
        f"{code_cell(total, TOTAL, '3')}\n\n"
        "Explain the notebook."
    )


def test_markdown_from_the_notebook_file_jupyterlab(server: FakeOpenRouter, tmp_path: Path) -> None:
    path = tmp_path / "analysis.ipynb"
    write_notebook(path, NOTEBOOK)
    kernel = start_kernel(server, JPY_SESSION_NAME=str(path))
    try:
        anchor(kernel, server, "lab")
        clean = run(kernel, CLEAN)
        total = run(kernel, TOTAL)
        content = ask(kernel, server, "-c lab", "Explain the notebook.")
    finally:
        kernel.shutdown()
    assert content == expected_markdown_block(count(clean), count(total))


def test_markdown_from_the_notebook_file_vscode(
    kernel: Kernel, server: FakeOpenRouter, tmp_path: Path
) -> None:
    path = tmp_path / "vscode.ipynb"
    write_notebook(path, NOTEBOOK)
    run(kernel, f"__vsc_ipynb_file__ = {str(path)!r}")
    try:
        anchor(kernel, server, "vscode")
        clean = run(kernel, CLEAN)
        total = run(kernel, TOTAL)
        content = ask(kernel, server, "-c vscode", "Explain the notebook.")
    finally:
        run(kernel, "del __vsc_ipynb_file__")
    assert content == expected_markdown_block(count(clean), count(total))


# --------------------------------------------------------------------------- variables


DATAFRAME = (
    "import numpy as np\nimport pandas as pd\n"
    "sales = pd.DataFrame({'units': [3.0, None, 7.0], 'count': [1, 2, 3], "
    "'price': [None, None, 2.5], 'flag': [True, False, True]})\n"
    "grid = np.arange(12, dtype=np.int32).reshape(3, 4)\n"
    "limits = {'low': 1, 'high': [5, 6]}"
)
SALES_SUMMARY = (
    "- sales:\n```\npandas DataFrame, 3 rows \u00d7 4 columns\n"
    "dtypes: units float64, count int64, price float64, flag bool\n"
    "nulls: units 1, price 2\nhead:\n"
)


def test_variables_named_in_the_prompt_are_summarised(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    anchor(kernel, server, "variables")
    run(kernel, DATAFRAME)
    content = ask(kernel, server, "-c variables", "Compare sales, grid and limits.")
    variables = content[content.index("\n\nVariables:\n") + 2 :]
    assert variables.startswith(f"Variables:\n{SALES_SUMMARY}")
    assert (
        "- grid:\n```\nnumpy ndarray, shape (3, 4), dtype int32, min 0, max 11\n"
        "[[ 0  1  2  3]\n [ 4  5  6  7]\n [ 8  9 10 11]]\n```\n"
    ) in variables
    assert variables.endswith(
        "- limits: dict, 2 keys: {'low': 1, 'high': [5, 6]}\n\nCompare sales, grid and limits."
    )


def test_braced_name_is_summarised_too(kernel: Kernel, server: FakeOpenRouter) -> None:
    anchor(kernel, server, "braced")
    run(kernel, DATAFRAME)
    run(kernel, "%%chat -c braced\nWhich column of {sales} has most gaps?")
    content = server.chat_requests()[0].body["messages"][-1]["content"]
    assert f"Variables:\n{SALES_SUMMARY}" in content


# --------------------------------------------------------------------------- redaction


OPENAI_KEY = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0"
GITHUB_TOKEN = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"


def test_secrets_are_redacted_everywhere(kernel: Kernel, server: FakeOpenRouter) -> None:
    assert len(OPENAI_KEY) == 43 and len(GITHUB_TOKEN) == 40
    anchor(kernel, server, "secrets")
    keys = run(kernel, f"print({OPENAI_KEY!r})\nprint('token', {GITHUB_TOKEN!r})")
    env = run(kernel, "import os\nprint('key is', os.environ['OPENROUTER_API_KEY'])")
    run(kernel, "creds = {'openrouter': os.environ['OPENROUTER_API_KEY']}")
    run(kernel, "%%chat -c secrets\nIs creds set up right?")
    [record] = server.chat_requests()
    raw = record.raw_body.decode()
    for secret in (OPENAI_KEY, GITHUB_TOKEN, API_KEY):
        assert secret not in raw
    content = record.body["messages"][-1]["content"]
    assert (
        code_cell(
            count(keys),
            "print('[REDACTED]')\nprint('token', '[REDACTED]')",
            "[REDACTED]\ntoken [REDACTED]",
        )
        in content
    )
    assert f"Out [{count(env)}]:\n```\nkey is [REDACTED]\n```" in content
    assert "- creds: dict, 1 key: {'openrouter': '[REDACTED]'}" in content
    assert content.count("[REDACTED]") == 6
    # %chat context shows the same redacted text in the notebook, which gets saved.
    # (no "?" at the end: IPython would take the line as a help request for "right")
    preview = run(kernel, "%chat context -c secrets --context all Is creds set up right")
    data = json.dumps(preview.of_type("display_data")[0]["content"]["data"])
    assert "[REDACTED]" in data
    for secret in (OPENAI_KEY, GITHUB_TOKEN, API_KEY):
        assert secret not in data


# --------------------------------------------------------------------------- budget


def test_budget_cuts_a_100_kb_output(kernel: Kernel, server: FakeOpenRouter) -> None:
    run(kernel, "%config ChatMagics.context_budget = 500")
    try:
        anchor(kernel, server, "budget")
        big = run(kernel, "print('x' * 100_000)")
        content = ask(kernel, server, "-c budget", "Summarise.")
    finally:
        run(kernel, "%config ChatMagics.context_budget = None")
    context = context_part(content, "Summarise.")
    assert len(context) <= 500 * 4
    source = code_cell(count(big), "print('x' * 100_000)")
    assert context.startswith(f"{SINCE_HEADER}\n\n{source}\nOut [{count(big)}]:\n```\nxxx")
    output = context[context.index("Out [") :]
    head, marker, tail = output.split("\n")[2:5]
    assert head == "x" * len(head) and tail == "x" * len(tail)
    assert len(head) > 500 and len(tail) > 500  # the middle was cut, not the whole output
    assert MARKER_RE.fullmatch(marker)


def test_budget_marker_counts_what_was_left_out(kernel: Kernel, server: FakeOpenRouter) -> None:
    # 6,000 characters: under the 8,000 one output keeps, so only the budget cuts it.
    run(kernel, "%config ChatMagics.context_budget = 500")
    try:
        anchor(kernel, server, "marker")
        run(kernel, "print('y' * 6_000)")
        content = ask(kernel, server, "-c marker", "Summarise.")
    finally:
        run(kernel, "%config ChatMagics.context_budget = None")
    head, marker, tail = content[content.index("Out [") :].split("\n")[2:5]
    shown = len(head) + len(tail)
    assert head == "y" * len(head) and tail == "y" * len(tail)
    assert marker == f"… [{6_000 - shown:,} characters left out] …"


def test_budget_marker_counts_the_whole_output(kernel: Kernel, server: FakeOpenRouter) -> None:
    run(kernel, "%config ChatMagics.context_budget = 500")
    try:
        anchor(kernel, server, "wholecount")
        run(kernel, "print('x' * 100_000)")
        content = ask(kernel, server, "-c wholecount", "Summarise.")
    finally:
        run(kernel, "%config ChatMagics.context_budget = None")
    head, marker, tail = content[content.index("Out [") :].split("\n")[2:5]
    match = MARKER_RE.fullmatch(marker)
    assert match is not None
    left_out = int(match.group(1).replace(",", ""))
    shown = len(head) + len(tail)
    # 100,000 x's and a newline were printed; whether the newline counts is a detail.
    assert left_out in (100_000 - shown, 100_001 - shown)


# --------------------------------------------------------------------------- modes


def test_context_none_sends_the_prompt_alone(kernel: Kernel, server: FakeOpenRouter) -> None:
    run(kernel, "alpha_values = [1, 2, 3]\nprint(alpha_values)")
    content = ask(kernel, server, "-c modenone --context none", "What is in alpha_values?")
    assert content == "What is in alpha_values?"


def test_context_one_sends_only_the_last_cell(kernel: Kernel, server: FakeOpenRouter) -> None:
    run(kernel, "print('penultimate')")
    last = run(kernel, "print('ultimate')")
    content = ask(kernel, server, "-c modeone --context 1", "Explain.")
    only = code_cell(count(last), "print('ultimate')", "ultimate")
    assert content == f"{RECENT_HEADER}\n\n{only}\n\nExplain."


def test_context_all_reaches_before_the_previous_chat(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    anchor(kernel, server, "modeall")
    before = run(kernel, "print('before the chat')")
    run(kernel, "%%chat -c modeall\nFirst.")
    server.reset()
    after = run(kernel, "print('after the chat')")
    auto = ask(kernel, server, "-c modeall", "Auto.")
    assert "before the chat" not in auto
    every = ask(kernel, server, "-c modeall --context all", "Everything.")
    assert every.startswith(
        "Notebook context (cells executed in this session; the user cannot see this block):\n\n"
    )
    assert code_cell(count(before), "print('before the chat')", "before the chat") in every
    newest = code_cell(count(after), "print('after the chat')", "after the chat")
    assert every.endswith(f"{newest}\n\nEverything.")
    assert "%%chat" not in every


# --------------------------------------------------------------------------- --fix


FIXED = "numbers = [3, 1, 2]\nprint(sorted(numbers))"


def test_fix_sends_the_error_and_puts_the_fix_below(kernel: Kernel, server: FakeOpenRouter) -> None:
    anchor(kernel, server, "fix")
    failed = kernel.execute("numbers = [3, 1, 2]\nnumbers.sorted()")
    assert failed.status == "error"
    server.enqueue(StreamReply(text=f"Lists have no `sorted` method.\n\n```python\n{FIXED}\n```\n"))
    execution = run(kernel, "%%chat -c fix --fix\nPlease.")
    [record] = server.chat_requests()
    content = record.body["messages"][-1]["content"]
    assert f"Error in [{count(failed)}]: shown under Last error below" in content
    assert "Last error:\n```\nTraceback (most recent call last):\n" in content
    assert "AttributeError: 'list' object has no attribute 'sorted'" in content
    assert content.endswith(f"\n\n{FIX_PROMPT}\n\nPlease.")
    assert execution.reply["content"]["payload"] == [
        {"source": "set_next_input", "text": FIXED, "replace": False}
    ]


def test_fix_alone_on_the_line(kernel: Kernel, server: FakeOpenRouter) -> None:
    anchor(kernel, server, "fixalone")
    assert kernel.execute("numbers.sorted()").status == "error"
    server.enqueue(StreamReply(text=f"```python\n{FIXED}\n```\n"))
    # a cell magic cannot have an empty body, so the line form runs the turn
    execution = kernel.execute("%chat --fix -c fixalone")
    assert execution.status == "ok", execution.error_text()
    assert server.chat_requests()[0].body["messages"][-1]["content"].endswith(FIX_PROMPT)


# --------------------------------------------------------------------------- %chat context


def test_context_command_shows_what_the_next_chat_sends(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    anchor(kernel, server, "preview")
    cell = run(kernel, "print('shown by the preview')")
    preview = run(kernel, "%chat context -c preview Go on.")
    assert server.requests == []  # nothing sent, not even a /models lookup
    [shown] = preview.of_type("display_data")
    text = shown["content"]["data"]["text/plain"]
    header, block = text.split("\n\n", 1)
    assert header == f"Context for the next %%chat: about {math.ceil(len(block) / 4)} tokens"
    assert code_cell(count(cell), "print('shown by the preview')", "shown by the preview") in block
    assert "shown by the preview" in shown["content"]["data"]["text/html"]
    # ... and it is exactly what the next %%chat of that conversation sends
    sent = ask(kernel, server, "-c preview", "Go on.")
    assert sent == f"{block}\n\nGo on."
