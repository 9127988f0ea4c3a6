"""Test doubles for the LLM stage: a local OpenAI-compatible server and tiny cut sets.

:class:`FakeChatServer` is a real HTTP server on 127.0.0.1 (``http.server`` in a
thread) that speaks enough of the chat-completions and completions protocols for
the ``openai`` backend, and misbehaves on request: 429 with ``Retry-After``, 5xx,
answers slower than the client's timeout, malformed JSON, dropped connections. It
counts requests and fully delivered answers per cut id, and the largest number of
requests it had in flight at once, so tests can check retries, concurrency and
"nothing sent twice" from the server's side. The throughput benchmark uses it with a
simulated latency.

The client sends ``X-Request-Id: <UUID>`` derived from the cut id and the body
(:func:`less.llm.openai_http.request_uuid`); the server finds the cut id back by
trying the names it knows: ``names``, the keys of ``faults`` and every cut id
:func:`make_pl_cuts` made in this process. An id it cannot resolve is counted as it
came. ``strict_request_ids`` answers HTTP 400 to an id that is not a UUID, as
llama-cpp-python does. ``GET /v1/models`` lists ``models`` (``models_route=False``:
404, as on servers without that route).

It listens on the loopback interface only and stops with :meth:`stop`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FAULTS = (
    "429",
    "500",
    "503",
    "400",
    "500_echo",
    "slow",
    "malformed",
    "drop",
    "empty_choices",
    "empty_answer",
)

# Cut ids made by make_pl_cuts in this process: names the server can resolve request ids to.
_KNOWN_NAMES: set[str] = set()
_MAX_ATTEMPTS = 12  # attempts per request the resolver tries (1 + max_retries of the tests)


def llm_correct_args(in_cuts: Path | str, out_cuts: Path | str, options: str, *more) -> list[str]:
    """The arguments of ``less.bin.llm_correct`` from ``in_cuts`` to ``out_cuts``.

    ``options``: constant flags and values separated by spaces (``"--task ast --backend openai"``);
    ``more``: flags and values taken as they are (paths, URLs, JSON: anything with a space).
    """
    return ["--in-cuts", str(in_cuts), "--out-cuts", str(out_cuts), *options.split()] + [
        str(value) for value in more
    ]


def llm_correct_command(
    in_cuts: Path | str, out_cuts: Path | str, options: str, *more
) -> list[str]:
    """The command line ``python -m less.bin.llm_correct`` with :func:`llm_correct_args`."""
    return [
        sys.executable,
        "-m",
        "less.bin.llm_correct",
        *llm_correct_args(in_cuts, out_cuts, options, *more),
    ]


def run_llm_correct(
    in_cuts: Path | str,
    out_cuts: Path | str,
    options: str,
    *more,
    timeout: float = 300,
    env: dict[str, str] | None = None,
):
    """Run :func:`llm_correct_command` as a subprocess (output captured as text)."""
    import subprocess

    return subprocess.run(
        llm_correct_command(in_cuts, out_cuts, options, *more),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


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
        names: Iterable[str] = (),
        strict_request_ids: bool = False,
        models: Iterable[str] = (),
        models_route: bool = True,
    ) -> None:
        self.answer_fn = answer_fn
        self.latency = latency
        self.faults = {key: list(value) for key, value in (faults or {}).items()}
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.completions = completions
        self.logprob_fn = logprob_fn
        self.hold_after = hold_after  # requests after the first hold_after wait for release()
        self.names = set(names)
        self.strict_request_ids = strict_request_ids
        self.models = list(models)
        self.models_route = models_route
        self.health_checks = 0  # GET /models requests
        self.raw_request_ids: list[str] = []  # X-Request-Id headers as received
        self._resolved: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.request_times: dict[str, list[float]] = {}
        self.answered: Counter[str] = Counter()
        self.authorization: list[str] = []
        self.chat_bodies: list[dict[str, Any]] = []  # every answered chat request, in order
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
        self._thread = threading.Thread(
            target=server.serve_forever, name="fake-llm-server", daemon=True
        )
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

    def resolve(self, header_id: str, body: Any) -> str:
        """The cut id behind an ``X-Request-Id`` (see the module docstring)."""
        if header_id in self._resolved:
            return self._resolved[header_id]
        candidates = self.names | set(self.faults) | _KNOWN_NAMES
        name = header_id
        if isinstance(body, dict) and header_id not in candidates:
            from less.llm.openai_http import body_digest, request_uuid

            digest = body_digest(body)
            ordered = sorted(candidates)  # first attempts first: most requests are answered at once
            name = next(
                (
                    candidate
                    for attempt in range(_MAX_ATTEMPTS)
                    for candidate in ordered
                    if request_uuid(candidate, body, attempt, digest) == header_id
                ),
                header_id,
            )
        self._resolved[header_id] = name
        return name

    def _next_fault(self, request_id: str) -> str | None:
        queue = self.faults.get(request_id)
        return queue.pop(0) if queue else None

    def _chat_body(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        content = self.answer_fn(request_id, body)
        self.chat_bodies.append(body)
        return {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": max(1, len(content.split())),
                "total_tokens": 0,
            },
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
                    "logprobs": {
                        "tokens": text_tokens + ["!"],
                        "token_logprobs": logprobs + [-1.0],
                        "text_offset": offsets + [position],
                        "top_logprobs": None,
                    },
                    "finish_reason": "length",
                }
            ],
        }

    def _handler_class(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(
                self, status: int, payload: bytes, headers: dict[str, str] | None = None
            ) -> bool:
                self._leave()  # answered: the client may send its next request from here on
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

            def do_GET(self) -> None:
                with owner._lock:
                    owner.health_checks += 1
                if owner._stopping.is_set():
                    return
                if self.path.rstrip("/").endswith("/models") and owner.models_route:
                    data = [
                        {"id": name, "object": "model", "owned_by": "test"} for name in owner.models
                    ]
                    self._send(200, json.dumps({"object": "list", "data": data}).encode("utf-8"))
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                header_id = self.headers.get("X-Request-Id", "")
                if owner.strict_request_ids:
                    try:
                        uuid.UUID(header_id)
                    except ValueError:
                        message = {
                            "detail": [
                                {"msg": f"Invalid X-Request-ID: {header_id!r} is not a UUID"}
                            ]
                        }
                        self._send(400, json.dumps(message).encode("utf-8"))
                        return
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                request_id = owner.resolve(header_id, parsed)
                with owner._lock:
                    owner.raw_request_ids.append(header_id)
                    owner.requests[request_id] += 1
                    owner.request_times.setdefault(request_id, []).append(time.monotonic())
                    owner.authorization.append(self.headers.get("Authorization", ""))
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    self._counted = True
                    fault = owner._next_fault(request_id)
                    hold = owner.hold_after is not None and owner._admitted >= owner.hold_after
                    if not hold:
                        owner._admitted += 1
                try:
                    if hold:
                        owner._released.wait(timeout=60)
                    self._serve(raw, request_id, fault)
                finally:
                    self._leave()

            def _leave(self) -> None:
                """End this request's in-flight count once: when its answer starts, else at the end."""
                with owner._lock:
                    if getattr(self, "_counted", False):
                        owner.in_flight -= 1
                        self._counted = False

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
                    echoed = json.dumps(
                        {"error": {"message": f"bad auth {self.headers.get('Authorization')}"}}
                    )
                    self._send(500, echoed.encode("utf-8"))
                    return
                if fault == "malformed":
                    self._send(200, b'{"choices": [{"message": {"content": "trunc')
                    return
                if fault == "empty_choices":
                    self._send(200, b'{"choices": []}')
                    return
                if (
                    fault == "empty_answer"
                ):  # a 200 whose message is empty (an overloaded or broken server)
                    empty = {
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": ""},
                                "finish_reason": "stop",
                            }
                        ]
                    }
                    self._send(200, json.dumps(empty).encode("utf-8"))
                    with owner._lock:
                        owner.answered[request_id] += 1
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
    from lhotse import CutSet

    cuts = []
    for index, hypothesis in enumerate(hypotheses):
        cut_id = f"{prefix}-{index:04d}"
        _KNOWN_NAMES.add(cut_id)
        candidates = nbest[index] if nbest is not None else [(hypothesis, -1.0)]
        pl = {
            "iter": 1,
            "teacher": "test-teacher",
            "hyp": hypothesis,
            "nbest": [[text, score] for text, score in candidates],
            "confidence": 0.9,
        }
        cuts.append(audio_free_cut(cut_id, language=language, text="", custom={"pl": pl}))
    return CutSet.from_cuts(cuts)


def audio_free_cut(cut_id: str, *, language: str, text: str, custom: dict):
    """A 1-second MonoCut with one supervision whose recording is a file that does not exist
    (for code that reads manifests and never loads audio)."""
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.audio import AudioSource

    recording = Recording(
        id=f"{cut_id}-rec",
        sources=[AudioSource(type="file", channels=[0], source=f"/nonexistent/{cut_id}.wav")],
        sampling_rate=16000,
        num_samples=16000,
        duration=1.0,
    )
    supervision = SupervisionSegment(
        id=f"{cut_id}-sup",
        recording_id=recording.id,
        start=0.0,
        duration=1.0,
        channel=0,
        language=language,
        text=text,
        custom=custom,
    )
    return MonoCut(
        id=cut_id,
        start=0.0,
        duration=1.0,
        channel=0,
        recording=recording,
        supervisions=[supervision],
    )
