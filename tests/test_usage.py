"""The footer under each answer and the session's usage ledger."""

from __future__ import annotations

import pytest
from processes import python_child

from ormagic.engine.usage import UsageLedger, UsageTotals, footer_text
from ormagic.events import Usage

FLASH = "deepseek/deepseek-v4-flash"
SONNET = "anthropic/claude-sonnet-4.6"
# The usage chunk of docs/openrouter-api.md §4.4
USAGE = Usage(prompt_tokens=12, completion_tokens=9, reasoning_tokens=6, cost=0.0000042)


# -- footer_text ------------------------------------------------------------------------


def test_footer_of_a_normal_answer() -> None:
    footer = footer_text(
        model=FLASH,
        requested_model=FLASH,
        provider="DeepSeek",
        usage=USAGE,
        cost=USAGE.cost,
        seconds=1.3,
    )
    assert footer == (
        "deepseek/deepseek-v4-flash via DeepSeek · 12 in / 9 out (6 reasoning)"
        " · $0.0000042 · 1.3 s · 6.9 tok/s"
    )


def test_footer_flags_a_fallback_model() -> None:
    footer = footer_text(
        model=SONNET,
        requested_model=FLASH,
        provider="Anthropic",
        usage=Usage(prompt_tokens=1200, completion_tokens=300, cost=0.0081),
        cost=0.0081,
        seconds=6.0,
    )
    assert footer == (
        "⚠ answered by anthropic/claude-sonnet-4.6 (fallback; asked for "
        "deepseek/deepseek-v4-flash) via Anthropic · 1,200 in / 300 out · $0.0081"
        " · 6.0 s · 50.0 tok/s"
    )


def test_footer_shows_cached_tokens_after_in_out() -> None:
    usage = Usage(prompt_tokens=12, completion_tokens=9, cached_tokens=4, cost=0.0000042)
    footer = footer_text(
        model=FLASH, requested_model=None, provider=None, usage=usage, cost=usage.cost, seconds=1.3
    )
    assert footer == (
        "deepseek/deepseek-v4-flash · 12 in / 9 out · 4 cached · $0.0000042 · 1.3 s · 6.9 tok/s"
    )


def test_footer_without_usage() -> None:
    footer = footer_text(
        model=None,
        requested_model=FLASH,
        provider=None,
        usage=None,
        cost=None,
        seconds=2.04,
        interrupted=True,
    )
    assert footer == "deepseek/deepseek-v4-flash · usage unavailable · 2.0 s · interrupted"


def test_footer_counts_tool_calls_and_says_why_a_model_had_none() -> None:
    common = {"model": None, "requested_model": FLASH, "provider": None, "usage": None}
    assert footer_text(**common, cost=None, seconds=2.04, tool_calls=1, interrupted=True) == (
        "deepseek/deepseek-v4-flash · usage unavailable · 2.0 s · 1 tool call · interrupted"
    )
    assert footer_text(**common, cost=None, seconds=1.0, tool_calls=3, note="no tools: x") == (
        "deepseek/deepseek-v4-flash · usage unavailable · 1.0 s · 3 tool calls · no tools: x"
    )


def test_footer_without_usage_shows_a_cost_found_later() -> None:
    footer = footer_text(
        model=FLASH,
        requested_model=FLASH,
        provider="DeepSeek",
        usage=None,
        cost=0.000003,
        seconds=1.0,
    )
    assert (
        footer == "deepseek/deepseek-v4-flash via DeepSeek · usage unavailable · $0.000003 · 1.0 s"
    )


def test_footer_with_unknown_cost_and_no_time() -> None:
    footer = footer_text(
        model=FLASH,
        requested_model=FLASH,
        provider="DeepSeek",
        usage=Usage(prompt_tokens=12, completion_tokens=9),
        cost=None,
        seconds=0.0,
    )
    assert (
        footer == "deepseek/deepseek-v4-flash via DeepSeek · 12 in / 9 out · cost unknown · 0.0 s"
    )


def test_footer_when_no_model_is_known() -> None:
    footer = footer_text(
        model=None, requested_model=None, provider=None, usage=None, cost=None, seconds=0.5
    )
    assert footer == "unknown model · usage unavailable · 0.5 s"


# -- UsageLedger ------------------------------------------------------------------------


def session() -> UsageLedger:
    ledger = UsageLedger()
    ledger.add(conversation="default", model=FLASH, usage=USAGE, cost=USAGE.cost, seconds=1.3)
    ledger.add(
        conversation="review",
        model=SONNET,
        usage=Usage(prompt_tokens=1200, completion_tokens=300, cached_tokens=1000, cost=0.0081),
        cost=0.0081,
        seconds=6.0,
    )
    # interrupted: no usage chunk arrived (docs §4.3), cost unknown
    ledger.add(conversation="default", model=FLASH, usage=None, cost=None, seconds=0.7)
    return ledger


def test_totals_count_every_turn() -> None:
    total = session().total
    assert total == UsageTotals(
        turns=3,
        prompt_tokens=1212,
        completion_tokens=309,
        reasoning_tokens=6,
        cached_tokens=1000,
        cost=pytest.approx(0.0081042, rel=1e-12),  # type: ignore[arg-type]
        unknown_cost_turns=1,
        seconds=pytest.approx(8.0, rel=1e-12),  # type: ignore[arg-type]
    )
    assert session().session_cost == pytest.approx(0.0081042, rel=1e-12)


def test_an_interrupted_turn_adds_time_and_a_turn_of_unknown_cost() -> None:
    ledger = UsageLedger()
    ledger.add(conversation="default", model=FLASH, usage=None, cost=None, seconds=0.7)
    assert ledger.total == UsageTotals(turns=1, unknown_cost_turns=1, seconds=0.7)
    assert ledger.session_cost == 0.0


def test_by_conversation_and_by_model() -> None:
    ledger = session()
    by_conversation = ledger.by_conversation()
    assert list(by_conversation) == ["default", "review"]
    assert by_conversation["default"] == UsageTotals(
        turns=2,
        prompt_tokens=12,
        completion_tokens=9,
        reasoning_tokens=6,
        cost=0.0000042,
        unknown_cost_turns=1,
        seconds=2.0,
    )
    by_model = ledger.by_model()
    assert list(by_model) == [FLASH, SONNET]
    assert by_model[SONNET] == UsageTotals(
        turns=1,
        prompt_tokens=1200,
        completion_tokens=300,
        cached_tokens=1000,
        cost=0.0081,
        seconds=6.0,
    )


def test_empty_ledger() -> None:
    ledger = UsageLedger()
    assert ledger.total == UsageTotals()
    assert ledger.by_conversation() == {}
    assert ledger.session_cost == 0.0
    assert ledger.table_text() == "No chats yet in this session."
    assert ledger.table_html() == "<p>No chats yet in this session.</p>"


def test_table_text() -> None:
    assert session().table_text() == (
        "conversation  turns     in  out  reasoning  cached            cost   time\n"
        "default           2     12    9          6       0  $0.0000042 + ?  2.0 s\n"
        "review            1  1,200  300          0   1,000         $0.0081  6.0 s\n"
        "\n"
        "model                        turns     in  out  reasoning  cached            cost   time\n"
        "deepseek/deepseek-v4-flash       2     12    9          6       0  $0.0000042 + ?  2.0 s\n"
        "anthropic/claude-sonnet-4.6      1  1,200  300          0   1,000         $0.0081  6.0 s\n"
        "\n"
        "total: 3 turns · 1,212 in / 309 out (6 reasoning) · 1,000 cached · $0.0081"
        " (+ 1 turn of unknown cost) · 8.0 s"
    )


def test_table_text_when_every_cost_is_unknown() -> None:
    ledger = UsageLedger()
    ledger.add(conversation="default", model=FLASH, usage=None, cost=None, seconds=0.7)
    ledger.add(conversation="default", model=FLASH, usage=None, cost=None, seconds=0.3)
    assert ledger.table_text() == (
        "conversation  turns  in  out  reasoning  cached          cost   time\n"
        "default           2   0    0          0       0  cost unknown  1.0 s\n"
        "\n"
        "model                       turns  in  out  reasoning  cached          cost   time\n"
        "deepseek/deepseek-v4-flash      2   0    0          0       0  cost unknown  1.0 s\n"
        "\n"
        "total: 2 turns · 0 in / 0 out · $0 (+ 2 turns of unknown cost) · 1.0 s"
    )


def test_table_html_escapes_names() -> None:
    ledger = UsageLedger()
    hostile = "<img src=x onerror=alert(1)>"
    ledger.add(conversation="default", model=hostile, usage=USAGE, cost=USAGE.cost, seconds=1.3)
    table = ledger.table_html()
    assert "<img" not in table
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in table
    right = '<td style="text-align:right">'
    assert (
        f"<tr><td>default</td>{right}1</td>{right}12</td>{right}9</td>{right}6</td>"
        f"{right}0</td>{right}$0.0000042</td>{right}1.3 s</td></tr>"
    ) in table
    assert table.endswith(
        "<p><b>total:</b> 1 turn · 12 in / 9 out (6 reasoning) · $0.0000042 · 1.3 s</p>"
    )
    assert table.count("<table>") == 2


def test_engines_do_not_import_ipython_or_widgets() -> None:
    code = (
        "import sys\n"
        "import ormagic.engine.export, ormagic.engine.models, ormagic.engine.usage\n"
        "heavy = {'IPython', 'ipywidgets', 'nbformat'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = python_child("-c", code)
    assert result.returncode == 0, result.stderr
    # nbformat too: ~0.2 s to import, only needed when a notebook is exported
    assert result.stdout == "[]\n"
