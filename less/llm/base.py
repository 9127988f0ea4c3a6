"""The one interface every LLM backend implements.

Correction needs two things from a language model: *generate* a rewrite of a
pseudo-label from a chat prompt (``correct`` mode, the paper's), or *score* text
(``rescore`` mode, which lets a plain base LM, e.g. the small Mandarin LM that
``less.bin.train_text_lm`` trains, choose among the teacher's N-best). Backends
differ in how they run the model (in-process transformers, an OpenAI-compatible
HTTP server), not in what the orchestration (``less.llm.correct``) asks of them.

Failures are values, not exceptions: a request that still fails after the
backend's retries comes back as a :class:`GenerationResult` with ``error`` set, so
one bad cut never stops a run over a million cuts.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


class ScoringNotSupportedError(RuntimeError):
    """The backend cannot compute log-probabilities of given text (``rescore`` mode)."""


class LLMUnavailableError(RuntimeError):
    """The model cannot answer at all (a server that is down, refuses the key, or does
    not serve the model): raised before any work, so that a run does not spend its
    retries on every cut to learn the same thing."""


@dataclass(frozen=True)
class ChatPrompt:
    """A system + user message pair, plus what backends need to size the answer.

    ``hypothesis`` is the text being corrected: backends bound the answer length by
    its length (a correction is about as long as what it corrects), which stops a
    rambling model early instead of paying for hundreds of useless tokens.
    ``request_id`` (the cut id, or the ids of a group) names the request in logs; HTTP
    backends send a UUID derived from it (see ``less.llm.openai_http.request_uuid``),
    since servers may refuse an ``X-Request-Id`` that is not a UUID.

    ``completion`` marks a few-shot prompt for *base* LMs: the text ends where the
    answer starts ("Corrected:"), so it is rendered as plain text even for a tokenizer
    with a chat template, and the answer is its first line. ``answer_lines`` is how
    many numbered answer lines a multi-segment prompt expects (generation may stop
    only after the last one).
    """

    system: str
    user: str
    hypothesis: str = ""
    request_id: str = ""
    completion: bool = False
    answer_lines: int = 1

    def messages(self) -> list[dict[str, str]]:
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": self.user})
        return messages

    def plain_text(self) -> str:
        """The prompt for models without a chat template (base LMs).

        A completion prompt has no trailing newline: the model continues the last
        line ("Corrected:") with the answer, as it did after every example.
        """
        end = "" if self.completion else "\n"
        return f"{self.system}\n\n{self.user}{end}" if self.system else f"{self.user}{end}"


@dataclass
class GenerationResult:
    """One answer: its raw text, how many tokens it took, or why there is none."""

    text: str = ""
    tokens_generated: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``continuation`` given ``prefix``: sum of log P(token | everything before).

    ``append_eos`` also scores the end-of-sentence token after the continuation, so
    a hypothesis cut short mid-sentence is penalised (as in LM rescoring for ASR).
    """

    continuation: str
    prefix: str = ""
    append_eos: bool = True
    request_id: str = ""


@dataclass
class LengthBudget:
    """``max_new_tokens = margin + ratio * tokens(hypothesis)``, capped at ``cap``."""

    ratio: float = 2.0
    margin: int = 16
    cap: int = 512

    def max_new_tokens(self, hypothesis_tokens: int) -> int:
        return int(min(self.cap, self.margin + self.ratio * hypothesis_tokens))


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def estimate_tokens(text: str) -> int:
    """Rough token count without a tokenizer (HTTP backends): a CJK character is about
    one token, a Latin word about 1.3, punctuation one."""
    cjk = len(_CJK.findall(text))
    rest = _CJK.sub(" ", text)
    words = len(re.findall(r"\w+", rest))
    punctuation = len(re.findall(r"[^\w\s]", rest))
    return cjk + int(round(1.3 * words)) + punctuation


@dataclass
class BackendStats:
    """Counters a backend keeps so the final report can say what the run cost."""

    requests_sent: int = 0  # HTTP attempts or generate() prompts, retries included
    retries: int = 0
    tokens_generated: int = 0
    generation_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def count_error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


class LLMBackend(ABC):
    """A language model that can answer chat prompts and, maybe, score text.

    ``model_id`` names the model in the cache key and in ``pl["llm"]["model"]``.
    ``parallelism`` says how many prompts the orchestration should hand over at
    once (the batch size of an in-process model, the number of requests in flight
    for a server). ``answers_stream`` backends get the whole list at once and keep
    no more than ``parallelism`` prompts in flight themselves.
    """

    model_id: str = ""
    endpoint: str = ""  # where the model runs, for messages (an HTTP backend's base URL)
    parallelism: int = 1
    answers_stream: bool = False  # generate_iter yields answers one by one as they arrive

    def __init__(self) -> None:
        self.stats = BackendStats()

    @abstractmethod
    def generate(self, prompts: Sequence[ChatPrompt]) -> list[GenerationResult]:
        """Answer every prompt (greedy decoding); one result per prompt, in order."""

    def generate_iter(
        self, prompts: Sequence[ChatPrompt]
    ) -> Iterator[tuple[int, GenerationResult]]:
        """Yield ``(index, result)`` as answers arrive, so callers can persist each at once.

        The default answers the whole list in one :meth:`generate` call; servers that
        answer requests one by one override it to yield in completion order.
        """
        yield from enumerate(self.generate(prompts))

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Sum log-probabilities (natural log) of each continuation given its prefix.

        A request that failed for good (a server that stayed down) scores ``nan``.
        """
        raise ScoringNotSupportedError(
            f"backend {type(self).__name__} cannot score text; use --mode correct, or a backend "
            "that exposes log-probabilities (--backend hf, or --backend openai against a server "
            "with the completions API and echo+logprobs, e.g. vLLM)"
        )

    def check_ready(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Raise :class:`LLMUnavailableError` quickly when the model cannot answer at all.

        Called once before the first request; in-process models are ready once loaded.
        """

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release threads, sessions and model memory."""
