"""Backend for any OpenAI-compatible server: vLLM, NVIDIA NIM, Ollama, OpenAI itself.

Correction of a large in-the-wild set is many small independent requests, so the
backend keeps ``max_concurrency`` of them in flight (a thread pool; the server
batches them) and treats the network as unreliable: every request has connect and
read timeouts and is retried with exponential backoff and jitter on 429, 408, 5xx,
timeouts, connection errors and malformed JSON, honouring ``Retry-After``. After the
last retry the request *fails as a value* (``GenerationResult.error``): the cut keeps
the teacher's text, the run goes on, the report counts it.

The API key is read from the environment variable whose *name* is configured
(``--api-key-env``, default ``OPENAI_API_KEY``), so it never appears on a command
line, in a log or in a saved config. Servers that need no key (a local vLLM or
Ollama) get no ``Authorization`` header when the variable is unset.

``rescore`` mode over HTTP uses the legacy completions API with ``echo`` and
``logprobs`` (vLLM and other servers that implement it); chat-only servers
(OpenAI's chat models, most hosted endpoints) cannot score text, and the backend
says so with :class:`~less.llm.base.ScoringNotSupportedError`. ``append_eos`` cannot
be honoured there (the server tokenizes) and is ignored.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from less.llm.base import (
    ChatPrompt,
    GenerationResult,
    LengthBudget,
    LLMBackend,
    ScoreRequest,
    ScoringNotSupportedError,
    estimate_tokens,
)

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


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


class RequestFailed(Exception):
    """One attempt failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, reason: str, detail: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


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
        self.config = config
        self.model_id = config.model
        self.parallelism = config.max_concurrency
        self.base_url = config.base_url.rstrip("/")
        api_key = os.environ.get(config.api_key_env, "")
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        else:
            logger.info("environment variable %s is not set: requests carry no API key", config.api_key_env)
        self._secret = api_key
        self._local = threading.local()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=config.max_concurrency, thread_name_prefix="llm-http")
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

    def _attempt(self, path: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        import requests

        headers = {"X-Request-Id": request_id} if request_id else None
        try:
            response = self._session().post(
                f"{self.base_url}{path}",
                json=body,
                headers=headers,
                timeout=(self.config.connect_timeout, self.config.timeout),
            )
        except requests.Timeout as error:
            raise RequestFailed("timeout", type(error).__name__, retryable=True) from None
        except requests.ConnectionError as error:
            raise RequestFailed("connection", type(error).__name__, retryable=True) from None
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
            raise RequestFailed("malformed_json", self._redact(response.text[:80]), retryable=True) from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise RequestFailed("malformed_json", "no choices in the answer", retryable=True)
        return data

    def _post(self, path: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """POST with retries; raises the last :class:`RequestFailed` when giving up."""
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            with self._lock:
                self.stats.requests_sent += 1
                if attempt:
                    self.stats.retries += 1
            try:
                return self._attempt(path, body, request_id)
            except RequestFailed as failure:
                if not failure.retryable or attempt == attempts - 1:
                    raise
                backoff = min(self.config.backoff_max, self.config.backoff_base * 2**attempt)
                delay = backoff * (0.5 + 0.5 * random.random())
                if failure.retry_after is not None:
                    delay = min(self.config.max_retry_after, max(delay, failure.retry_after))
                logger.debug(
                    "request %s: %s (attempt %d/%d); retrying in %.2f s",
                    request_id, failure, attempt + 1, attempts, delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- generation --------------------------------------------------------------------------

    def _chat(self, prompt: ChatPrompt) -> GenerationResult:
        budget = self.config.length_budget
        max_tokens = budget.max_new_tokens(estimate_tokens(prompt.hypothesis)) if prompt.hypothesis else budget.cap
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
            logger.warning("request %s failed for good: %s", prompt.request_id, failure)
            return GenerationResult(error=failure.reason)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else None
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

    def generate_iter(self, prompts: Sequence[ChatPrompt]) -> Iterator[tuple[int, GenerationResult]]:
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
        logprobs = data["choices"][0].get("logprobs") if isinstance(data["choices"][0], dict) else None
        if not isinstance(logprobs, dict) or not logprobs.get("token_logprobs") or logprobs.get("text_offset") is None:
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
            logger.warning("score request %s failed for good: %s", request.request_id, failure)
            return float("nan")

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Log-probabilities, ``nan`` for a request that failed after its retries."""
        futures = [self._executor.submit(self._score_or_nan, request) for request in requests]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if not self._closed:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._closed = True
