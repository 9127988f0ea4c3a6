"""Test doubles for the LLM stage: a local OpenAI-compatible server and tiny cut sets.

:class:`FakeChatServer` is a real HTTP server on 127.0.0.1 (``http.server`` in a
thread) that speaks enough of the chat-completions and completions protocols for
the ``openai`` backend, and misbehaves on request: 429 with ``Retry-After``, 5xx,
answers slower than the client's timeout, malformed JSON, dropped connections. It
counts requests and fully delivered answers per request id (the cut id), and the
largest number of requests it had in flight at once, so tests can check retries,
concurrency and "nothing sent twice" from the server's side. The throughput
benchmark uses it with a simulated latency.

It listens on the loopback interface only and stops with :meth:`stop`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("429", "500", "503", "400", "500_echo", "slow", "malformed", "drop", "empty_choices")


def last_line_answer(request_id: str, body: dict[str, Any]) -> str:
    """Default 'model': repeats the text after the last colon of the prompt (the hypothesis)."""
    user = body["messages"][-1]["content"].strip().splitlines()[-1]
    for colon in (":", "："):
        if colon in user:
            user = user.rsplit(colon, 1)[1]
    return user.strip()


def char_logprob(token: str) -> float:
    """Default scorer of the fake completions API: every character costs 1 nat."""
    return -float(len(token))


class FakeChatServer:
    def __init__(
        self,
        answer_fn: Callable[[str, dict[str, Any]], str] = last_line_answer,
        latency: float = 0.0,
        faults: dict[str, list[str]] | None = None,
        retry_after: str = "1",
        slow_seconds: float = 2.0,
        completions: bool = True,
        logprob_fn: Callable[[str], float] = char_logprob,
        hold_after: int | None = None,
    ) -> None:
        self.answer_fn = answer_fn
        self.latency = latency
        self.faults = {key: list(value) for key, value in (faults or {}).items()}
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.completions = completions
        self.logprob_fn = logprob_fn
        self.hold_after = hold_after  # requests after the first hold_after wait for release()
        self.requests: Counter[str] = Counter()
        self.request_times: dict[str, list[float]] = {}
        self.answered: Counter[str] = Counter()
        self.authorization: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._admitted = 0
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeChatServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Let held requests go on (they answer sockets whose client may be gone)."""
        self.hold_after = None
        self._released.set()

    def stop(self) -> None:
        self._stopping.set()
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_answered(self) -> int:
        return sum(self.answered.values())

    # -- protocol ----------------------------------------------------------------------------

    def _next_fault(self, request_id: str) -> str | None:
        queue = self.faults.get(request_id)
        return queue.pop(0) if queue else None

    def _chat_body(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        content = self.answer_fn(request_id, body)
        return {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(content.split())), "total_tokens": 0},
        }

    def _completion_body(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt", "")
        tokens = prompt.split(" ")
        offsets, logprobs, text_tokens, position = [], [], [], 0
        for i, token in enumerate(tokens):
            piece = token if i == 0 else " " + token
            text_tokens.append(piece)
            offsets.append(position)
            logprobs.append(None if i == 0 else self.logprob_fn(token))
            position += len(piece)
        return {
            "object": "text_completion",
            "choices": [
                {
                    "index": 0,
                    "text": prompt + "!",
                    "logprobs": {"tokens": text_tokens + ["!"], "token_logprobs": logprobs + [-1.0],
                                 "text_offset": offsets + [position], "top_logprobs": None},
                    "finish_reason": "length",
                }
            ],
        }

    def _handler_class(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> bool:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                    return True
                except OSError:  # the client gave up (timeout, killed)
                    return False

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                request_id = self.headers.get("X-Request-Id", "")
                with owner._lock:
                    owner.requests[request_id] += 1
                    owner.request_times.setdefault(request_id, []).append(time.monotonic())
                    owner.authorization.append(self.headers.get("Authorization", ""))
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    fault = owner._next_fault(request_id)
                    hold = owner.hold_after is not None and owner._admitted >= owner.hold_after
                    if not hold:
                        owner._admitted += 1
                try:
                    if hold:
                        owner._released.wait(timeout=60)
                    self._serve(raw, request_id, fault)
                finally:
                    with owner._lock:
                        owner.in_flight -= 1

            def _serve(self, raw: bytes, request_id: str, fault: str | None) -> None:
                if owner._stopping.is_set():
                    return
                if owner.latency:
                    time.sleep(owner.latency)
                if fault in ("429", "500", "503", "400"):
                    headers = {"Retry-After": owner.retry_after} if fault == "429" else None
                    self._send(int(fault), b'{"error": {"message": "injected"}}', headers)
                    return
                if fault == "500_echo":  # a server that leaks request headers into its error text
                    echoed = json.dumps({"error": {"message": f"bad auth {self.headers.get('Authorization')}"}})
                    self._send(500, echoed.encode("utf-8"))
                    return
                if fault == "malformed":
                    self._send(200, b'{"choices": [{"message": {"content": "trunc')
                    return
                if fault == "empty_choices":
                    self._send(200, b'{"choices": []}')
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "slow":
                    time.sleep(owner.slow_seconds)
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, b'{"error": {"message": "bad json"}}')
                    return
                if self.path.rstrip("/").endswith("/chat/completions"):
                    payload = owner._chat_body(body, request_id)
                elif self.path.rstrip("/").endswith("/completions") and owner.completions:
                    payload = owner._completion_body(body)
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                delivered = self._send(200, json.dumps(payload, ensure_ascii=False).encode("utf-8"))
                if delivered and fault != "slow":
                    with owner._lock:
                        owner.answered[request_id] += 1

        return Handler


def make_pl_cuts(
    hypotheses: list[str],
    nbest: list[list[tuple[str, float]]] | None = None,
    prefix: str = "cut",
    language: str = "zh",
):
    """A CutSet of 1-second cuts (no audio needed) carrying ``custom["pl"]`` records."""
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
    from lhotse.audio import AudioSource

    cuts = []
    for index, hypothesis in enumerate(hypotheses):
        cut_id = f"{prefix}-{index:04d}"
        recording = Recording(
            id=f"{cut_id}-rec",
            sources=[AudioSource(type="file", channels=[0], source=f"/nonexistent/{cut_id}.wav")],
            sampling_rate=16000,
            num_samples=16000,
            duration=1.0,
        )
        candidates = nbest[index] if nbest is not None else [(hypothesis, -1.0)]
        pl = {
            "iter": 1,
            "teacher": "test-teacher",
            "hyp": hypothesis,
            "nbest": [[text, score] for text, score in candidates],
            "confidence": 0.9,
        }
        supervision = SupervisionSegment(
            id=f"{cut_id}-sup", recording_id=recording.id, start=0.0, duration=1.0, channel=0,
            language=language, text="", custom={"pl": pl},
        )
        cuts.append(MonoCut(id=cut_id, start=0.0, duration=1.0, channel=0, recording=recording,
                            supervisions=[supervision]))
    return CutSet.from_cuts(cuts)
