"""The fake's batch endpoint speaks OpenRouter's documented protocol (D-BATCH), and its
knobs for batches of rows (latency, respond) do what they say."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from waiting import eventually

from ormagic.testing._catalogue import model_prices
from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, StreamReply

BATCHES = "/api/beta/batches"


def client(fake: FakeOpenRouter, key: str | None = None) -> httpx.Client:
    base = fake.base_url.removesuffix("/api/v1")
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {key or fake.api_key}"}, timeout=10
    )


def submit(fake: FakeOpenRouter, body: Any, key: str | None = None) -> httpx.Response:
    with client(fake, key) as http:
        return http.post(BATCHES, content=json.dumps(body).encode())


def request(custom_id: str, text: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "body": {"messages": [{"role": "user", "content": text}], **body},
    }


MODEL = "deepseek/deepseek-v4-flash"


def test_a_batch_goes_validating_in_progress_finalizing_completed(
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake = fake_openrouter
    fake.respond = lambda body: (
        ErrorReply(400, "bad row")
        if body["messages"][0]["content"] == "two"
        else StreamReply(text="ok")
    )
    answer = submit(
        fake,
        {
            "endpoint": "/v1/chat/completions",
            "model": MODEL,
            "requests": [request("a", "one"), request("b", "two")],
        },
    )
    assert answer.status_code == 202
    batch = answer.json()
    assert (batch["status"], batch["results"], batch["completion_window"]) == (
        "validating",
        None,
        "24h",
    )
    assert batch["request_counts"] == {"total": 2, "completed": 0, "failed": 0}
    seen = []
    with client(fake) as http:
        for _ in range(4):
            polled = http.get(f"{BATCHES}/{batch['id']}").json()
            seen.append(polled["status"])
    assert seen == ["in_progress", "finalizing", "completed", "completed"]
    first, second = polled["results"]
    assert first["custom_id"] == "a" and first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "ok"
    assert first["response"]["body"]["id"].startswith("gen-batch-")
    assert second == {
        "id": "batch_req_1",
        "custom_id": "b",
        "response": None,
        "error": {"code": 400, "message": "bad row"},
    }
    assert polled["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    usage = first["response"]["body"]["usage"]
    listed = model_prices(fake.models, MODEL)
    full = usage["prompt_tokens"] * listed[0] + usage["completion_tokens"] * listed[1]
    assert usage["cost"] == pytest.approx(full / 2)  # about half the listed price
    assert polled["usage"]["cost"] == pytest.approx(usage["cost"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"requests": [request("a", "x")], "endpoint": "/v1/chat/completions", "model": MODEL},
            "endpoint and model must be serialized before requests",
        ),
        ({"endpoint": "/v1/chat/completions", "model": MODEL}, "Missing required field: requests"),
        (
            {"endpoint": "/v1/chat/completions", "model": MODEL, "requests": []},
            "requests must be a non-empty array",
        ),
        (
            {
                "endpoint": "/v1/chat/completions",
                "model": MODEL,
                "requests": [request("a", "x"), request("a", "y")],
            },
            "custom_id must be a unique, non-empty string",
        ),
        (
            {
                "endpoint": "/v1/chat/completions",
                "model": MODEL,
                "requests": [request("a", "x", model="other/m")],
            },
            "a: the body's model must match the batch's model",
        ),
        (
            {
                "endpoint": "/v1/chat/completions",
                "model": MODEL,
                "requests": [
                    {
                        "custom_id": "a",
                        "body": {
                            "messages": [
                                {
                                    "role": "user",
                                    "content": [
                                        {"type": "image_url", "image_url": {"url": "data:,"}}
                                    ],
                                }
                            ]
                        },
                    }
                ],
            },
            "a: the batch API accepts text only",
        ),
        (
            {"endpoint": "/v2/nothing", "model": MODEL, "requests": [request("a", "x")]},
            "Unsupported endpoint '/v2/nothing'",
        ),
    ],
)
def test_what_the_real_endpoint_refuses_is_refused(
    fake_openrouter: FakeOpenRouter, body: dict[str, Any], message: str
) -> None:
    answer = submit(fake_openrouter, body)
    assert answer.status_code == 400
    assert answer.json() == {"error": {"message": message, "code": 400}}
    assert fake_openrouter.batches.jobs == {}


def test_an_unknown_batch_is_404_and_a_wrong_key_401(fake_openrouter: FakeOpenRouter) -> None:
    with client(fake_openrouter) as http:
        assert http.get(f"{BATCHES}/batch_nope").status_code == 404
    body = {"endpoint": "/v1/chat/completions", "model": MODEL, "requests": [request("a", "x")]}
    assert submit(fake_openrouter, body, key="sk-or-v1-wrong").status_code == 401


def test_latency_delays_every_chat_answer_and_respond_picks_by_content(
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake = fake_openrouter
    fake.respond = lambda body: StreamReply(text=body["messages"][0]["content"].upper())
    body = {"model": MODEL, "messages": [{"role": "user", "content": "shout"}], "stream": False}
    url = f"{fake.base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    # an hour of latency: nothing comes back before the client gives up and leaves
    fake.latency = 3600
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=body, headers=headers, timeout=httpx.Timeout(30, read=1.0))
    [waited] = fake.chat_requests()
    eventually(lambda: waited.client_disconnected, "the server noticing the client left")
    fake.latency = 0.0
    answer = httpx.post(url, json=body, headers=headers, timeout=30)
    assert answer.json()["choices"][0]["message"]["content"] == "SHOUT"
