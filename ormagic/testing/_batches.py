"""OpenRouter's batch endpoint as the fake serves it (docs/openrouter-tools.md §4, D-BATCH).

``POST /api/beta/batches`` takes ``{endpoint, model, requests: [{custom_id, body}]}`` with
``endpoint`` and ``model`` before ``requests`` (the real endpoint stream-parses and answers
400 otherwise), refuses image, audio and file parts (text only), and answers ``202`` with
the batch object in ``validating``. Each ``GET /api/beta/batches/:id`` moves it one step
along ``validating -> in_progress -> finalizing -> completed`` (every
``polls_per_status`` polls); a completed batch carries its ``results`` inline, one per
``custom_id``, each with exactly one of ``response`` (a chat completion priced at half the
listed price) or ``error``. ``end_with`` makes the next batches end ``failed`` or
``expired`` instead; ``failing`` makes a job's polls answer an error status (a 5xx).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._catalogue import reply_usage
from ._frames import Chat, chat_result, error_body, new_generation_id
from ._replies import ErrorReply, Reply, StreamReply, default_reply, request_messages

__all__ = ["BATCHES_PATH", "FakeBatch", "FakeBatches"]

BATCHES_PATH = "/api/beta/batches"
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings")
_PROGRESSION = ("validating", "in_progress", "finalizing", "completed")
_NOT_TEXT = ("image_url", "input_audio", "file", "video_url")
# what the batch endpoint typically bills (D-BATCH "Pricing")
BATCH_SHARE = 0.5

Answer = Callable[[dict[str, Any], str], Reply]
Prices = Callable[[str], tuple[float, float]]


@dataclass
class FakeBatch:
    id: str
    model: str
    requests: list[dict[str, Any]]
    created_at: int
    status: str = "validating"
    polls: int = 0
    finalized_at: int | None = None
    results: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    end_with: str = "completed"

    def to_json(self) -> dict[str, Any]:
        completed = sum(1 for r in self.results or () if r.get("response"))
        failed = sum(1 for r in self.results or () if r.get("error"))
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "model": self.model,
            "completion_window": "24h",
            "status": self.status,
            "created_at": self.created_at,
            "finalized_at": self.finalized_at,
            "request_counts": {
                "total": len(self.requests),
                "completed": completed,
                "failed": failed,
            },
            "usage": self.usage,
            "results": self.results if self.status == "completed" else None,
            "error": None,
        }


@dataclass
class FakeBatches:
    """The batches a fake OpenRouter holds; tests read ``jobs`` and set the knobs."""

    polls_per_status: int = 1
    end_with: str = "completed"  # "failed" / "expired": how the next batches end
    failing: dict[str, int] = field(default_factory=dict)  # job id -> status its polls get
    jobs: dict[str, FakeBatch] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Forget every job and put the knobs back to their defaults."""
        with self._lock:
            self.jobs.clear()
            self.polls_per_status = FakeBatches.polls_per_status
            self.end_with = FakeBatches.end_with

    def create(self, body: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /api/beta/batches``: (status, JSON answer)."""
        problem = _problem(body, raw)
        if problem is not None:
            return 400, error_body(problem, 400)
        batch = FakeBatch(
            id=f"batch_{secrets.token_hex(8)}",
            model=body["model"],
            requests=list(body["requests"]),
            created_at=int(time.time()),
            end_with=self.end_with,
        )
        with self._lock:
            self.jobs[batch.id] = batch
        return 202, batch.to_json()

    def poll(self, batch_id: str, answer: Answer, prices: Prices) -> tuple[int, dict[str, Any]]:
        """``GET /api/beta/batches/:id``: one step further every ``polls_per_status`` polls."""
        with self._lock:
            if batch_id in self.failing:
                status = self.failing[batch_id]
                return status, error_body("Internal Server Error", status)
            batch = self.jobs.get(batch_id)
            if batch is None:
                return 404, error_body(f"Batch {batch_id} not found", 404)
            batch.polls += 1
            if batch.status in _PROGRESSION[:-1] and batch.polls % self.polls_per_status == 0:
                self._advance(batch, answer, prices)
            return 200, batch.to_json()

    def _advance(self, batch: FakeBatch, answer: Answer, prices: Prices) -> None:
        following = _PROGRESSION[_PROGRESSION.index(batch.status) + 1]
        if following == "completed" and batch.end_with != "completed":
            batch.status, batch.finalized_at = batch.end_with, int(time.time())
            return
        batch.status = following
        if following == "completed":
            batch.results, batch.usage = _results(batch, answer, prices)
            batch.finalized_at = int(time.time())


def _problem(body: Any, raw: bytes) -> str | None:
    """Why the real endpoint would answer 400, or None."""
    if not isinstance(body, dict):
        return "Invalid JSON in request body"
    for name in ("endpoint", "model", "requests"):
        if name not in body:
            return f"Missing required field: {name}"
    keys = list(body)
    if keys.index("requests") < max(keys.index("endpoint"), keys.index("model")):
        return "endpoint and model must be serialized before requests"
    if body["endpoint"] not in ENDPOINTS:
        return f"Unsupported endpoint {body['endpoint']!r}"
    requests = body["requests"]
    if not isinstance(requests, list) or not requests:
        return "requests must be a non-empty array"
    ids = [r.get("custom_id") if isinstance(r, dict) else None for r in requests]
    if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
        return "custom_id must be a unique, non-empty string"
    for item in requests:
        problem = _request_problem(item.get("body"), body["model"])
        if problem is not None:
            return f"{item['custom_id']}: {problem}"
    return None


def _request_problem(body: Any, model: str) -> str | None:
    if not isinstance(body, dict) or not request_messages(body):
        return "body must be a chat completions request with messages"
    if "model" in body and body["model"] != model:
        return "the body's model must match the batch's model"
    for message in request_messages(body):
        content = message.get("content")
        parts = content if isinstance(content, list) else []
        if any(isinstance(p, dict) and p.get("type") in _NOT_TEXT for p in parts):
            return "the batch API accepts text only"
    return None


def _results(
    batch: FakeBatch, answer: Answer, prices: Prices
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results = []
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0.0}
    listed = prices(batch.model)
    half = (listed[0] * BATCH_SHARE, listed[1] * BATCH_SHARE)
    for n, item in enumerate(batch.requests):
        reply = answer(item["body"], batch.model)
        entry: dict[str, Any] = {"id": f"batch_req_{n}", "custom_id": item["custom_id"]}
        if isinstance(reply, ErrorReply):
            entry["response"] = None
            entry["error"] = {"code": reply.status, "message": reply.message}
        else:
            stream = reply if isinstance(reply, StreamReply) else StreamReply()
            usage = reply_usage(request_messages(item["body"]), stream, half)
            chat = Chat(new_generation_id(), int(time.time()), batch.model, stream.provider)
            body = chat_result(stream, chat, usage)
            body["id"] = chat.generation_id.replace("gen-", "gen-batch-", 1)
            entry["response"] = {"status_code": 200, "request_id": f"request_{n}", "body": body}
            entry["error"] = None
            for name in ("prompt_tokens", "completion_tokens", "total_tokens", "cost"):
                totals[name] += usage.get(name) or 0
        results.append(entry)
    totals["cost"] = round(float(totals["cost"]), 10)
    return results, {**totals, "is_byok": False}


def default_answer(body: Mapping[str, Any], model: str) -> Reply:
    return default_reply(request_messages(body), model)
