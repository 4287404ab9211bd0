"""A real IPython kernel driven over ZMQ, seeing exactly what a frontend sees on IOPub."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager
from processes import default_stop_signals


@dataclass
class Execution:
    """Everything the kernel sent for one execute request."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    def display_messages(self) -> list[dict[str, Any]]:
        return self.of_type("display_data", "update_display_data", "clear_output")

    def final_outputs(self) -> list[dict[str, Any]]:
        """The outputs a notebook would save: replay IOPub like a frontend does."""
        outputs: list[dict[str, Any]] = []
        pending_clear = False
        for msg in self.messages:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "clear_output":
                if content.get("wait"):
                    pending_clear = True
                else:
                    outputs = []
                continue
            if kind in ("display_data", "execute_result", "stream", "error"):
                if pending_clear:
                    outputs, pending_clear = [], False
                outputs.append({"output_type": kind, **content})
            elif kind == "update_display_data":
                target = content.get("transient", {}).get("display_id")
                for out in outputs:
                    if out.get("transient", {}).get("display_id") == target:
                        out["data"] = content["data"]
                        out["metadata"] = content["metadata"]
        return outputs

    def stream_text(self, name: str = "stdout") -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == name
        )

    def error_text(self) -> str:
        """What the user reads as the cell's error: a traceback's last line, or the one
        line IPython prints to stderr for a UsageError."""
        errors = self.of_type("error")
        lines = [f"{e['content']['ename']}: {e['content']['evalue']}" for e in errors]
        return "\n".join(lines) if lines else self.stream_text("stderr").strip()


class Kernel:
    """Start an ipykernel with a given environment; run code with optional cell ids.

    The environment is this process's (which the suite's conftest cleans of the user's
    settings) with ``env`` over it. The kernel starts with SIGINT and SIGTERM at their
    defaults and unblocked, so an interrupt works whatever the test runner inherited.
    """

    def __init__(self, env: dict[str, str]) -> None:
        full_env = {**os.environ, **env}
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=full_env, preexec_fn=default_stop_signals)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def execute(
        self,
        code: str,
        *,
        cell_id: str | None = None,
        timeout: float = 60,
        interrupt_after: str | None = None,
        interrupt_when: Callable[[], bool] | None = None,
        on_message: Callable[[dict[str, Any]], object] | None = None,
    ) -> Execution:
        """Run ``code``; interrupt once an output contains ``interrupt_after`` (the code,
        which the kernel broadcasts before it runs, does not count), or once
        ``interrupt_when()`` is true (it is asked about every 50 ms). ``on_message`` sees
        each IOPub message of the cell as it arrives (to open a gate of the fake server
        once the frontend shows something, say)."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.client.session.msg("execute_request", content, metadata=metadata)
        self.client.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        execution = Execution(reply={})
        deadline = time.monotonic() + timeout
        interrupted = False
        idle = False
        while not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle after {timeout} s for {code[:60]!r}")
            try:
                message = self.client.get_iopub_msg(timeout=min(remaining, 0.05))
            except queue.Empty:
                if interrupt_when and not interrupted and interrupt_when():
                    self.manager.interrupt_kernel()
                    interrupted = True
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            execution.messages.append(message)
            if on_message is not None:
                on_message(message)
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                idle = True
            if (
                interrupt_after
                and not interrupted
                and message["msg_type"] != "execute_input"  # the code itself: not an output
                and interrupt_after in str(message["content"])
            ):
                self.manager.interrupt_kernel()
                interrupted = True
        execution.reply = self._reply_to(msg_id, timeout)
        return execution

    def _reply_to(self, msg_id: str, timeout: float) -> dict[str, Any]:
        """The execute reply for ``msg_id`` (skipping replies an aborted wait left behind)."""
        while True:
            reply: dict[str, Any] = self.client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def start_kernel(server: Any, **env: str) -> Kernel:
    """A kernel pointed at the fake ``server`` (plus ``env``), with ``%load_ext ormagic`` run.

    Loading must print nothing and send nothing over the network.
    """
    kernel = Kernel(
        {"OPENROUTER_API_KEY": server.api_key, "OPENROUTER_BASE_URL": server.base_url, **env}
    )
    before = len(server.requests)
    loaded = kernel.execute("%load_ext ormagic")
    assert loaded.status == "ok", loaded.error_text()
    assert loaded.of_type("stream", "display_data", "error") == []
    assert len(server.requests) == before
    return kernel
