"""The ``%chat`` commands (issue 5) as a notebook user sees them, in a real kernel.

Every execution here goes through :func:`command`, which also checks that the API key
appears in none of the IOPub messages the kernel sent and not in the execute reply.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from kernel_support import Execution, Kernel, start_kernel

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

pytestmark = pytest.mark.timeout(180)

DEEPSEEK = "deepseek/deepseek-v4-flash"
NANO = "openai/gpt-5-nano"
SONNET = "anthropic/claude-sonnet-4.6"


def command(kernel: Kernel, server: FakeOpenRouter, code: str) -> Execution:
    """Run ``code``; the key must not be in anything the kernel sent back."""
    execution = kernel.execute(code)
    for message in execution.messages:
        if message["msg_type"] != "execute_input":  # the echo of the code the user typed
            assert server.api_key not in json.dumps(message["content"]), message["msg_type"]
    assert server.api_key not in json.dumps(execution.reply["content"])
    return execution


def ok(kernel: Kernel, server: FakeOpenRouter, code: str) -> Execution:
    execution = command(kernel, server, code)
    assert execution.status == "ok", execution.error_text()
    return execution


def shown(execution: Execution) -> dict[str, str]:
    """The one display a command made: its MIME bundle."""
    [display] = execution.of_type("display_data")
    return dict(display["content"]["data"])


def models_requests(server: FakeOpenRouter) -> list[Any]:
    return [r for r in server.requests if (r.method, r.path) == ("GET", "/api/v1/models")]


def usage(
    prompt: int, completion: int, cost: float, *, reasoning: int = 0, cached: int = 0
) -> dict[str, Any]:
    """A usage object as OpenRouter sends it in the last chunk."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": cost,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def one_line_error(execution: Execution) -> str:
    """The UsageError line on stderr; there must be no traceback."""
    assert execution.status == "error"
    assert execution.of_type("error") == []
    text = execution.stream_text("stderr")
    assert text.count("\n") == 1 and text.endswith("\n")
    return text.rstrip("\n")


# --------------------------------------------------------------------------- models


DEEPSEEK_TABLE = (
    "id                          name                           context  max output"
    "  input $/M  output $/M  reasoning  tools\n"
    "deepseek/deepseek-v4-flash  DeepSeek: DeepSeek V4 Flash  1,048,576     393,216"
    "      $0.14       $0.28  yes        yes\n"
    "1 model"
)


def test_models_table_and_cache(kernel: Kernel, server: FakeOpenRouter) -> None:
    first = shown(ok(kernel, server, "%chat models deepseek"))
    assert first["text/plain"] == DEEPSEEK_TABLE
    html = first["text/html"]
    assert html.startswith("<table>")
    for cell in (
        f"<td>{DEEPSEEK}</td>",
        '<td style="text-align:right">1,048,576</td>',
        '<td style="text-align:right">$0.14</td>',
        '<td style="text-align:right">$0.28</td>',
    ):
        assert cell in html
    assert html.endswith("<p>1 model</p>")
    server.reset()
    again = shown(ok(kernel, server, "%chat models deepseek"))
    assert again == first
    assert models_requests(server) == []  # within the cache period: no new GET /models
    refreshed = shown(ok(kernel, server, "%chat models deepseek --refresh"))
    assert refreshed == first
    assert len(models_requests(server)) == 1


def test_models_sorted_by_price_reasoning_only(kernel: Kernel, server: FakeOpenRouter) -> None:
    text = shown(ok(kernel, server, "%chat models --sort price --reasoning"))["text/plain"]
    lines = text.splitlines()
    # deepseek $0.14 + $0.28, gpt-5-nano $0.05 + $0.40, sonnet $3 + $15 per million
    assert [line.split()[0] for line in lines[1:-1]] == [DEEPSEEK, NANO, SONNET]
    assert "128,000      $0.05       $0.40  yes        yes" in lines[2]
    assert lines[-1] == "3 models"


# --------------------------------------------------------------------------- usage


def table_rows(section: str) -> list[list[str]]:
    return [re.split(r" {2,}", line) for line in section.splitlines()]


def test_usage_per_conversation_and_model(server: FakeOpenRouter) -> None:
    kernel = start_kernel(server)  # a kernel of its own: the ledger covers the whole session
    try:
        server.enqueue(
            StreamReply(text="a1", usage=usage(1200, 340, 0.00026, reasoning=120)),
            StreamReply(text="b1", usage=usage(800, 150, 0.00004)),
            StreamReply(text="a2", usage=usage(2000, 500, 0.00021, reasoning=200, cached=1500)),
            StreamReply(text="b2", usage=usage(400, 60, 0.00003)),
        )
        ok(kernel, server, "%%chat -c alpha\nOne")
        ok(kernel, server, f"%%chat -c beta -m {NANO}\nTwo")
        ok(kernel, server, f"%%chat -c alpha -m {NANO}\nThree")
        ok(kernel, server, "%%chat -c beta\nFour")
        reply = shown(ok(kernel, server, "%chat usage"))
    finally:
        kernel.shutdown()
    conversations, models, total = reply["text/plain"].split("\n\n")
    columns = ["turns", "in", "out", "reasoning", "cached", "cost", "time"]
    rows = table_rows(conversations)
    assert rows[0] == ["conversation", *columns]
    assert [row[:-1] for row in rows[1:]] == [
        ["alpha", "2", "3,200", "840", "320", "1,500", "$0.00047"],
        ["beta", "2", "1,200", "210", "0", "0", "$0.00007"],
    ]
    rows = table_rows(models)
    assert rows[0] == ["model", *columns]
    assert [row[:-1] for row in rows[1:]] == [
        [DEEPSEEK, "2", "1,600", "400", "120", "0", "$0.00029"],
        [NANO, "2", "2,800", "650", "200", "1,500", "$0.00025"],
    ]
    assert all(re.fullmatch(r"\d+\.\d s", row[-1]) for row in rows[1:])
    assert re.fullmatch(
        r"total: 4 turns · 4,400 in / 1,050 out \(320 reasoning\) · 1,500 cached · \$0\.00054 "
        r"· \d+\.\d s",
        total,
    )
    html = reply["text/html"]
    assert "<td>alpha</td>" in html and f"<td>{NANO}</td>" in html
    assert '<td style="text-align:right">$0.00047</td>' in html


# --------------------------------------------------------------------------- key


def test_key_shows_limits_never_the_key(kernel: Kernel, server: FakeOpenRouter) -> None:
    reply = shown(ok(kernel, server, "%chat key"))
    label = f"{server.api_key[:12]}...{server.api_key[-3:]}"  # what OpenRouter shows
    assert reply["text/plain"] == (
        f"label      {label}\nlimit      $10.00\nusage      $2.75\nremaining  $7.25\nfree tier  no"
    )
    assert "<td style='text-align:left'>$7.25</td>" in reply["text/html"]
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/api/v1/key")]


def test_key_label_holding_the_key_is_hidden(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.key_info = {
        **server.key_info,
        "label": f"my key {server.api_key}",
        "limit": None,
        "limit_remaining": None,
        "usage": 0.75,
    }
    reply = shown(ok(kernel, server, "%chat key"))  # command() checks the key is absent
    assert reply["text/plain"] == (
        "label      (hidden)\n"
        "limit      none\n"
        "usage      $0.75\n"
        "remaining  unlimited\n"
        "free tier  no"
    )


# --------------------------------------------------------------------------- answers


def answer_and_footer(execution: Execution) -> tuple[dict[str, Any], str]:
    """The saved answer output (the one with Markdown) and the footer text under it."""
    outputs = [o for o in execution.final_outputs() if "data" in o]
    [answer] = [o for o in outputs if "text/markdown" in o["data"]]
    return answer, str(outputs[-1]["data"]["text/plain"])


def test_answer_metadata_is_what_the_fake_sent(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(
        StreamReply(
            text="Answered.",
            model=NANO,  # OpenRouter fell back to the second model
            provider="Chutes",
            generation_id="gen-1760000000-meta0000000000000001",
            usage=usage(2048, 256, 0.000421, reasoning=64),
        )
    )
    execution = ok(kernel, server, f"%%chat -c meta -m {SONNET} --fallback {NANO}\nHi")
    answer, footer = answer_and_footer(execution)
    metadata = dict(answer["metadata"]["ormagic"])
    # the time it took is whatever it was: seconds to the millisecond here, and in the
    # footer to the tenth, with the output speed it gives
    elapsed = metadata.pop("elapsed")
    assert type(elapsed) is float and elapsed >= 0 and round(elapsed, 3) == elapsed
    shown = re.fullmatch(
        rf"⚠ answered by {re.escape(NANO)} \(fallback; asked for {re.escape(SONNET)}\) via "
        r"Chutes · 2,048 in / 256 out \(64 reasoning\) · \$0\.000421 · (\d+\.\d) s"
        r"(?: · (\d+\.\d) tok/s)?",
        footer,
    )
    assert shown is not None, footer
    seconds, speed = shown.groups()
    assert abs(float(seconds) - elapsed) <= 0.05 + 0.0005 + 1e-9  # both rounded
    if speed is not None:  # 256 tokens over the unrounded time: within the rounding
        fastest = 256 / max(elapsed - 0.0005, 1e-9)
        assert 256 / (elapsed + 0.0005) - 0.05 <= float(speed) <= fastest + 0.05
    assert isinstance(metadata.pop("session_id"), str)
    assert metadata == {
        "format": 1,
        "conversation": "meta",
        "system": None,
        "cell_id": None,
        "prompt": "Hi",
        # the answer's text is the output's text/plain: kept there once
        "messages": [{"role": "assistant"}],
        "reasoning_derived": [],
        "content_in_output": "text/plain",
        "chosen": True,
        "error": None,
        "finish_reason": "stop",
        "requested_model": SONNET,
        "model": NANO,
        "provider": "Chutes",
        "generation_id": "gen-1760000000-meta0000000000000001",
        "usage": {
            "prompt_tokens": 2048,
            "completion_tokens": 256,
            "reasoning_tokens": 64,
            "cached_tokens": 0,
        },
        "cost": 0.000421,
        "interrupted": False,
    }
    assert answer["data"]["text/plain"] == "Answered."


def test_footer_shows_cached_tokens(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(
        StreamReply(
            text="Cached.", provider="DeepSeek", usage=usage(2048, 256, 0.000421, cached=1536)
        )
    )
    _, footer = answer_and_footer(ok(kernel, server, "%%chat -c cached\nHi"))
    assert footer.startswith(
        f"{DEEPSEEK} via DeepSeek · 2,048 in / 256 out · 1,536 cached · $0.000421 · "
    )


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("code", "pattern"),
    [
        (
            "%chat frobnicate",
            re.escape(
                "UsageError: %chat: unknown command 'frobnicate'; try one of: config, context, "
                "export, history, key, load, models, pick, providers, reset, resume, tools, usage"
            ),
        ),
        (
            "%chat models --sort size",
            # argparse quotes the choices before Python 3.12.8 and not after
            r"UsageError: %chat models: argument --sort: invalid choice: 'size' "
            r"\(choose from '?price'?, '?context'?, '?newest'?\)",
        ),
        (
            "%chat load /nonexistent.json",
            re.escape("UsageError: Cannot read /nonexistent.json: No such file or directory"),
        ),
    ],
)
def test_bad_input_is_one_clear_line(
    kernel: Kernel, server: FakeOpenRouter, code: str, pattern: str
) -> None:
    assert re.fullmatch(pattern, one_line_error(command(kernel, server, code)))
    assert server.requests == []


def test_export_to_an_unknown_format(
    kernel: Kernel, server: FakeOpenRouter, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    line = one_line_error(command(kernel, server, f"%chat export {target}"))
    assert line == f"UsageError: %chat export: '{target}' must end in .ipynb or .json"
    assert not target.exists()


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_is_one_line(kernel: Kernel, server: FakeOpenRouter) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/v1"
    ok(kernel, server, f"%config ChatMagics.base_url = {url!r}")
    ok(kernel, server, "%config ChatMagics.max_retries = 0")  # no backoff sleeps in the test
    try:
        models = one_line_error(command(kernel, server, "%chat models"))
        key = one_line_error(command(kernel, server, "%chat key"))
    finally:
        ok(kernel, server, "%config ChatMagics.base_url = None")
        ok(kernel, server, "%config ChatMagics.max_retries = 2")
    pattern = (
        rf"UsageError: Could not reach {re.escape(url)}: [^\n]+\. "
        r"Check your network or OPENROUTER_BASE_URL\."
    )
    assert re.fullmatch(pattern, models)
    assert re.fullmatch(pattern, key)
    assert server.requests == []


# --------------------------------------------------------------------------- the key


def test_no_command_shows_the_key(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(StreamReply(text="Hello."))
    ok(kernel, server, "%%chat -c keycheck\nHi")
    for code in (
        "%chat",
        "%chat config",
        "%chat key",
        "%chat models",
        "%chat usage",
        "%chat history keycheck",
        "%chat context -c keycheck",
    ):
        ok(kernel, server, code)  # command() asserts the key is in no message
    status = shown(ok(kernel, server, "%chat"))["text/plain"]
    assert "API key: set from OPENROUTER_API_KEY" in status
    config = shown(ok(kernel, server, "%chat config"))["text/plain"]
    assert config.endswith("api_key          set from OPENROUTER_API_KEY")
    # Typing the key into a cell is refused, and the refusal does not repeat it.
    refused = one_line_error(command(kernel, server, f"%chat config api_key={server.api_key}"))
    assert refused == (
        "UsageError: Set the key in the environment (OPENROUTER_API_KEY), not in a cell: "
        "cells are saved with the notebook."
    )
