"""Backend for any OpenAI-compatible server: vLLM, NVIDIA NIM, Ollama, OpenAI itself.

Correction of a large in-the-wild set is many small independent requests, so the
backend keeps ``max_concurrency`` of them in flight (a thread pool; the server
batches them) and treats the network as unreliable: every request has connect and
read timeouts and is retried with exponential backoff and jitter on 429, 408, 5xx,
timeouts, connection errors and malformed JSON, honouring ``Retry-After``. After the
last retry the request *fails as a value* (``GenerationResult.error``): the cut keeps
the teacher's text, the run goes on, the report counts it. A chat answer with HTTP 200
and an empty message (what a server in trouble may send) is asked once more; a second
empty answer stands (the cut is then ``rejected:empty``).

The API key is read from the environment variable whose *name* is configured
(``--api-key-env``, default ``OPENAI_API_KEY``), so it never appears on a command
line, in a log or in a saved config; a value that looks like a key rather than a
variable name is refused without being repeated (:func:`check_api_key_env`).
Servers that need no key (a local vLLM or Ollama) get no ``Authorization`` header
when the variable is unset.

Before the first request, :meth:`OpenAIHTTPBackend.check_ready` asks the server once,
with a short timeout (``GET <base>/models``, or a 1-token chat request where that
route is missing), so that a server that is down, hangs, refuses the key or does not
serve the model stops the run at once with a message naming the URL, instead of every
cut spending its retries (with the defaults, minutes per cut) to fail the same way.

Each request carries ``X-Request-Id: <UUID>`` (:func:`request_uuid`), derived from the
cut id and the request body: the same in every run, so that server logs can be
matched to cuts (the debug log prints both), and a UUID because some servers refuse
anything else (llama-cpp-python answers HTTP 400, which is not retried, so every cut
failed when the cut id was sent as it is).

``rescore`` mode over HTTP uses the legacy completions API with ``echo`` and
``logprobs`` (vLLM and other servers that implement it); chat-only servers
(OpenAI's chat models, most hosted endpoints) cannot score text, and the backend
says so with :class:`~less.llm.base.ScoringNotSupportedError`. ``append_eos`` cannot
be honoured there (the server tokenizes) and is ignored.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from less.llm.base import (
    ChatPrompt,
    GenerationResult,
    LengthBudget,
    LLMBackend,
    LLMUnavailableError,
    ScoreRequest,
    ScoringNotSupportedError,
    estimate_tokens,
)

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

# Any fixed UUID: the namespace of the request ids this package sends.
REQUEST_ID_NAMESPACE = uuid.UUID("0b5e7c3a-1d2f-4e8b-9c47-5a6d3e2f1b90")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Prefixes of API keys and tokens of common providers (OpenAI, Hugging Face, GitHub, Groq, xAI, Google,
# NVIDIA): an --api-key-env that starts with one is a pasted key, not a variable name.
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "ghp_", "gsk_", "xai-", "AIza", "nvapi-")


def check_api_key_env(name: str) -> None:
    """Refuse an ``--api-key-env`` that is not the NAME of an environment variable.

    Passing the key itself is an easy mistake (``--api-key-env sk-...``); it used to be
    logged as "environment variable sk-... is not set". The error says what is wrong
    without repeating the value. An empty name means: send no key.
    """
    if not name:
        return
    if name.startswith(_KEY_PREFIXES[:2]) or (name.startswith(_KEY_PREFIXES) and len(name) >= 20):
        problem = "looks like an API key itself"
    elif not _ENV_NAME.fullmatch(name):
        problem = (
            "is not an environment variable name (letters, digits and _, not starting with a digit)"
        )
    else:
        return
    raise ValueError(
        f"--api-key-env takes the NAME of the environment variable that holds the API key (e.g. OPENAI_API_KEY), "
        f"but the value given ({len(name)} characters, not shown) {problem}. Put the key in the environment "
        "(export OPENAI_API_KEY=...) and pass --api-key-env OPENAI_API_KEY; if a key was typed on a command "
        "line, it is in your shell history: consider revoking it."
    )


def body_digest(body: dict[str, Any]) -> str:
    """SHA-256 of a request body as JSON with sorted keys (what the server parses is the same)."""
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).hexdigest()


def request_uuid(
    name: str, body: dict[str, Any], attempt: int = 0, digest: str | None = None
) -> str:
    """The ``X-Request-Id`` of one attempt of a request.

    A UUID, which every server accepts (cut ids are not: llama-cpp-python validates the
    header, and ids with non-Latin-1 characters cannot be sent in a header at all),
    derived from the request's ``name`` (its cut id), a hash of its ``body`` and the
    attempt number: reproducible across runs, different for a retry (a server may still
    be working on the attempt the client gave up on) and for a changed prompt. ``digest``:
    :func:`body_digest` of ``body`` when already known.
    """
    digest = digest or body_digest(body)
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{name}\n{digest}\n{attempt}"))


def _connection_problem(error: Exception) -> str:
    """A short reason for a connection error (requests' own text is a long urllib3 repr)."""
    text = str(error)
    for needle, reason in (
        ("refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("getaddrinfo", "unknown host"),
        ("No route to host", "no route to host"),
        ("reset by peer", "connection reset"),
        ("RemoteDisconnected", "server closed the connection"),
        ("SSL", "TLS/SSL error"),
    ):
        if needle in text:
            return reason
    return type(error).__name__


@dataclass
class HTTPConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 8
    connect_timeout: float = 10.0
    timeout: float = 120.0  # read timeout of one attempt
    max_retries: int = 5  # attempts = 1 + max_retries
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    temperature: float = 0.0
    length_budget: LengthBudget = field(default_factory=LengthBudget)
    health_check: bool = True  # one quick request before the run (check_ready)
    health_timeout: float = 10.0  # connect and read timeout of that request (s)


class RequestFailed(Exception):
    """One attempt failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(
        self,
        reason: str,
        detail: str,
        retryable: bool,
        retry_after: float | None = None,
        answer: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        self.answer = answer  # a valid answer that is still worth asking again (an empty message)


EMPTY_ANSWER_RETRIES = 1  # an empty chat message is asked again this many times, then accepted


def _empty_message(data: dict[str, Any]) -> bool:
    choice = data["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    return isinstance(message, dict) and not (message.get("content") or "").strip()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIHTTPBackend(LLMBackend):
    answers_stream = True

    def __init__(self, config: HTTPConfig) -> None:
        super().__init__()
        import requests  # noqa: F401  (fail here, with the import error, not in a thread)

        if config.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {config.max_concurrency}")
        check_api_key_env(config.api_key_env)
        self.config = config
        self.model_id = config.model
        self.parallelism = config.max_concurrency
        self.base_url = config.base_url.rstrip("/")
        self.endpoint = self.base_url
        api_key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        elif config.api_key_env:
            logger.info(
                "environment variable %s is not set: requests carry no API key", config.api_key_env
            )
        self._secret = api_key
        self._local = threading.local()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=config.max_concurrency, thread_name_prefix="llm-http"
        )
        self._closing = (
            threading.Event()
        )  # set by close(): no new attempt, no more waiting to retry
        self._in_flight = 0
        self._closed = False

    # -- transport ---------------------------------------------------------------------------

    def _session(self):
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            self._local.session = session
        return session

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    @property
    def requests_in_flight(self) -> int:
        """Attempts waiting for the server now (after close(), each ends by its read timeout)."""
        with self._lock:
            return self._in_flight

    def _attempt(
        self, path: str, body: dict[str, Any], request_id: str, attempt: int = 0
    ) -> dict[str, Any]:
        import requests

        header_id = request_uuid(request_id, body, attempt)
        logger.debug("request %s attempt %d: X-Request-Id %s", request_id, attempt + 1, header_id)
        with self._lock:
            self._in_flight += 1
        try:
            response = self._session().post(
                f"{self.base_url}{path}",
                json=body,
                headers={"X-Request-Id": header_id},
                timeout=(self.config.connect_timeout, self.config.timeout),
            )
        except requests.Timeout as error:
            raise RequestFailed("timeout", type(error).__name__, retryable=True) from None
        except requests.ConnectionError as error:
            raise RequestFailed("connection", _connection_problem(error), retryable=True) from None
        finally:
            with self._lock:
                self._in_flight -= 1
        if response.status_code != 200:
            detail = self._redact(response.text[:200].replace("\n", " "))
            raise RequestFailed(
                f"http_{response.status_code}",
                detail,
                retryable=response.status_code in RETRYABLE_STATUS,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        try:
            data = response.json()
        except ValueError:
            raise RequestFailed(
                "malformed_json", self._redact(response.text[:80]), retryable=True
            ) from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("choices"), list)
            or not data["choices"]
        ):
            raise RequestFailed("malformed_json", "no choices in the answer", retryable=True)
        if path == "/chat/completions" and _empty_message(data):
            raise RequestFailed(
                "empty_answer", "HTTP 200 with an empty message", retryable=True, answer=data
            )
        return data

    def _post(self, path: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """POST with retries; raises the last :class:`RequestFailed` when giving up."""
        attempts = self.config.max_retries + 1
        empty_answers = 0
        for attempt in range(attempts):
            with self._lock:
                self.stats.requests_sent += 1
                if attempt:
                    self.stats.retries += 1
            try:
                return self._attempt(path, body, request_id, attempt)
            except RequestFailed as failure:
                if failure.answer is not None:
                    empty_answers += 1
                    if (
                        empty_answers > EMPTY_ANSWER_RETRIES
                        or attempt == attempts - 1
                        or self._closing.is_set()
                    ):
                        return failure.answer
                elif not failure.retryable or attempt == attempts - 1 or self._closing.is_set():
                    raise
                backoff = min(self.config.backoff_max, self.config.backoff_base * 2**attempt)
                delay = backoff * (0.5 + 0.5 * random.random())
                if failure.retry_after is not None:
                    delay = min(self.config.max_retry_after, max(delay, failure.retry_after))
                logger.debug(
                    "request %s: %s (attempt %d/%d); retrying in %.2f s",
                    request_id,
                    failure,
                    attempt + 1,
                    attempts,
                    delay,
                )
                if self._closing.wait(delay):  # closed while waiting: give up now
                    raise
        raise AssertionError("unreachable")

    # -- generation --------------------------------------------------------------------------

    def _chat(self, prompt: ChatPrompt) -> GenerationResult:
        budget = self.config.length_budget
        max_tokens = (
            budget.max_new_tokens(estimate_tokens(prompt.hypothesis))
            if prompt.hypothesis
            else budget.cap
        )
        body = {
            "model": self.config.model,
            "messages": prompt.messages(),
            "temperature": self.config.temperature,
            "max_tokens": max_tokens,
            "n": 1,
        }
        start = time.perf_counter()
        try:
            data = self._post("/chat/completions", body, prompt.request_id)
            choice = data["choices"][0]
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                raise RequestFailed("malformed_json", "choice without a message", retryable=False)
            text = message.get("content") or ""
        except RequestFailed as failure:
            with self._lock:
                self.stats.count_error(failure.reason)
            logger.warning(
                "request %s to %s failed for good: %s", prompt.request_id, self.base_url, failure
            )
            return GenerationResult(error=failure.reason)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = (
            usage.get("completion_tokens")
            if isinstance(usage.get("completion_tokens"), int)
            else None
        )
        tokens = tokens if tokens is not None else estimate_tokens(text)
        with self._lock:
            self.stats.tokens_generated += tokens
            self.stats.generation_seconds += time.perf_counter() - start
        return GenerationResult(text=text, tokens_generated=tokens)

    def generate(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(prompts)
        for index, result in self.generate_iter(prompts):
            results[index] = result
        return results  # type: ignore[return-value]

    def generate_iter(
        self, prompts: Sequence[ChatPrompt]
    ) -> Iterator[tuple[int, GenerationResult]]:
        """Keep ``max_concurrency`` requests in flight; yield each answer as it lands."""
        pending: dict[Future, int] = {}
        queue = iter(enumerate(prompts))
        try:
            for index, prompt in queue:
                pending[self._executor.submit(self._chat, prompt)] = index
                if len(pending) >= self.config.max_concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    next_item = next(queue, None)
                    if next_item is not None:
                        pending[self._executor.submit(self._chat, next_item[1])] = next_item[0]
                    yield index, future.result()
        finally:
            for future in pending:
                future.cancel()

    # -- scoring -----------------------------------------------------------------------------

    def _score_one(self, request: ScoreRequest) -> float:
        body = {
            "model": self.config.model,
            "prompt": request.prefix + request.continuation,
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": True,
            "logprobs": 1,
        }
        try:
            data = self._post("/completions", body, request.request_id)
        except RequestFailed as failure:
            if failure.reason in ("http_404", "http_400", "http_405", "http_501"):
                raise ScoringNotSupportedError(
                    f"{self.base_url}/completions answered {failure.reason} ({failure.detail}): this "
                    "server does not offer the completions API with echo+logprobs needed by "
                    "--mode rescore; use --mode correct, or a server such as vLLM"
                ) from None
            raise
        logprobs = (
            data["choices"][0].get("logprobs") if isinstance(data["choices"][0], dict) else None
        )
        if (
            not isinstance(logprobs, dict)
            or not logprobs.get("token_logprobs")
            or logprobs.get("text_offset") is None
        ):
            raise ScoringNotSupportedError(
                f"{self.base_url}/completions returned no echoed prompt log-probabilities; "
                "--mode rescore needs a server that supports echo=True with logprobs (e.g. vLLM)"
            )
        start, end = len(request.prefix), len(request.prefix) + len(request.continuation)
        total = 0.0
        for offset, logprob in zip(logprobs["text_offset"], logprobs["token_logprobs"]):
            if start <= offset < end and logprob is not None:
                total += float(logprob)
        return total

    def _score_or_nan(self, request: ScoreRequest) -> float:
        try:
            return self._score_one(request)
        except RequestFailed as failure:
            with self._lock:
                self.stats.count_error(failure.reason)
            logger.warning(
                "score request %s to %s failed for good: %s",
                request.request_id,
                self.base_url,
                failure,
            )
            return float("nan")

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Log-probabilities, ``nan`` for a request that failed after its retries."""
        futures = [self._executor.submit(self._score_or_nan, request) for request in requests]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()

    # -- readiness ---------------------------------------------------------------------------

    def check_ready(self) -> None:
        """One request with a short timeout before the run; :class:`LLMUnavailableError` if
        the server cannot answer (down, hanging, refusing the key, not serving the model).

        ``GET <base>/models`` is part of the OpenAI API and costs the server nothing; a
        server without it (404/405/501) gets a 1-token chat request instead. A model
        missing from the list is only a warning: proxies and Ollama list other names for
        models they serve.
        """
        if not self.config.health_check:
            return

        wait = self.config.health_timeout
        timeout = (min(self.config.connect_timeout, wait), wait)
        url = f"{self.base_url}/models"
        hint = (
            "start the server, or point --base-url at it (it must end with /v1 for most servers); "
            "--no-health-check skips this check"
        )
        with self._health_errors(f"GET {url} within {wait:g} s", hint):
            response = self._session().get(url, timeout=timeout)
        if response.status_code in (404, 405, 501):
            self._check_chat(timeout, hint)
            return
        self._raise_for_status(response, f"GET {url}")
        try:
            served = [
                str(item.get("id"))
                for item in response.json().get("data", [])
                if isinstance(item, dict)
            ]
        except (ValueError, AttributeError):
            served = []
        if served and self.config.model not in served:
            shown = ", ".join(served[:5]) + (
                f" and {len(served) - 5} more" if len(served) > 5 else ""
            )
            logger.warning(
                "%s lists the models %s but not --model %s: requests may fail with HTTP 404",
                url,
                shown,
                self.config.model,
            )
        logger.info("LLM server %s is up (GET /models: %d models)", self.base_url, len(served))

    @contextlib.contextmanager
    def _health_errors(self, what: str, hint: str) -> Iterator[None]:
        """The health check's request errors as :class:`LLMUnavailableError` naming the server."""
        import requests

        try:
            yield
        except requests.Timeout:
            raise LLMUnavailableError(
                f"the LLM server at {self.base_url} did not answer {what} "
                f"(--health-timeout): {hint}"
            ) from None
        except requests.ConnectionError as error:
            raise LLMUnavailableError(
                f"cannot reach the LLM server at {self.base_url} "
                f"({_connection_problem(error)}): {hint}"
            ) from None
        except requests.RequestException as error:  # a malformed URL, a missing http:// ...
            raise LLMUnavailableError(
                f"cannot ask the LLM server at {self.base_url}: {type(error).__name__} "
                f"({error}); check --base-url"
            ) from None

    def _check_chat(self, timeout: tuple[float, float], hint: str) -> None:
        url = f"{self.base_url}/chat/completions"
        body = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 1,
            "temperature": 0.0,
        }
        with self._health_errors(f"a 1-token request to {url} within {timeout[1]:g} s", hint):
            response = self._session().post(
                url,
                json=body,
                timeout=timeout,
                headers={"X-Request-Id": request_uuid("health-check", body)},
            )
        self._raise_for_status(response, f"POST {url} (model {self.config.model})")
        logger.info("LLM server %s is up (answered a 1-token chat request)", self.base_url)

    def _raise_for_status(self, response, what: str) -> None:
        if response.status_code == 200:
            return
        detail = self._redact(response.text[:200].replace("\n", " "))
        if response.status_code in (401, 403):
            key = (
                f"the key in ${self.config.api_key_env}"
                if self._secret
                else f"no key (${self.config.api_key_env} is not set)"
                if self.config.api_key_env
                else "no key"
            )
            advice = f"it refused {key}; check --api-key-env and the key"
        elif response.status_code == 404:
            advice = f"check --base-url and --model {self.config.model}"
        elif response.status_code == 503:
            advice = "the server is not ready (still loading the model?); wait and rerun"
        else:
            advice = "see the server's log"
        raise LLMUnavailableError(
            f"LLM server check failed: {what} answered HTTP {response.status_code} "
            f"({detail}): {advice}"
        )

    def close(self) -> None:
        """Stop: cancel queued requests, stop retrying; attempts in flight end by their timeout."""
        self._closing.set()
        if not self._closed:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._closed = True
