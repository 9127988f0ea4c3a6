"""Correct the pseudo-labels of a cut set with an LLM (the third step of LESS).

Two modes:

* ``correct`` (the paper's): the LLM reads a prompt with the teacher's 1-best (and
  optionally its N-best) and writes the corrected text; :mod:`less.llm.cleaning`
  accepts or rejects the answer.
* ``rescore``: the LLM scores every N-best hypothesis; the hypothesis with the best
  ``teacher_score + lm_weight * llm_score`` (LLM score optionally divided by the
  hypothesis length in scoring units) wins. Any causal LM serves, including the small
  Mandarin text LM of ``less.bin.train_text_lm`` (no Chinese instruct model is
  available offline).

Every cut gets ``pl["llm"] = {"model", "prompt_sha", "text", "status", "mode"}``;
``status`` is ``ok``, ``rejected:<reason>`` or ``failed:<reason>``, and ``text`` is
the teacher's hypothesis unless the status is ``ok``. Answers go through
:class:`~less.llm.cache.AnswerCache` the moment they arrive, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from less.data.text import normalize, scoring_units
from less.llm.base import ChatPrompt, LLMBackend, ScoreRequest
from less.llm.cache import AnswerCache, CacheEntry, input_sha
from less.llm.cleaning import CleaningConfig, clean_answer
from less.llm.prompts import PromptBuilder, load_template, rescore_prompt_sha

logger = logging.getLogger(__name__)

MODES = ("correct", "rescore")


class LLMRequestFailed(RuntimeError):
    """A request failed for good and the run was told to stop on failures."""


@dataclass
class CorrectionConfig:
    task: str = "asr"
    lang: str = "zh"
    mode: str = "correct"
    prompt_template: str | None = None  # file; None: the packaged one for task/lang
    nbest_in_prompt: int = 0
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    # rescore mode
    lm_weight: float = 0.5
    length_norm: bool = False
    score_prefix: str = ""
    normalize_for_scoring: bool = True
    append_eos: bool = True
    fail_fast: bool = False
    show_progress: bool | None = None  # None: a progress bar only on a terminal


@dataclass
class CorrectionReport:
    cuts: int = 0
    ok: int = 0
    unchanged: int = 0  # ok and equal to the teacher's hypothesis
    cache_hits: int = 0
    stale_cache_entries: int = 0
    answers_received: int = 0
    requests_sent: int = 0  # attempts, retries included
    retries: int = 0
    failures: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    tokens_generated: int = 0
    request_seconds: float = 0.0
    tokens_per_second: float = 0.0
    wall_seconds: float = 0.0
    cuts_per_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def log(self) -> None:
        logger.info(
            "llm correction: %d cuts in %.1f s (%.2f cuts/s): %d ok (%d unchanged), %d rejected %s, "
            "%d failed %s",
            self.cuts, self.wall_seconds, self.cuts_per_second, self.ok, self.unchanged, self.rejected,
            self.rejection_reasons or "", self.failures, self.failure_reasons or "",
        )
        logger.info(
            "requests sent: %d (%d retries), answers received: %d, cache hits: %d (stale: %d), "
            "generated tokens: %d (%.1f tokens/s over %.1f s of requests)",
            self.requests_sent, self.retries, self.answers_received, self.cache_hits,
            self.stale_cache_entries, self.tokens_generated, self.tokens_per_second, self.request_seconds,
        )


def pl_supervision_index(cut) -> int:
    """Index of the supervision carrying ``custom["pl"]``; a clear error if none does."""
    for index, supervision in enumerate(cut.supervisions):
        if supervision.custom and isinstance(supervision.custom.get("pl"), dict):
            return index
    raise ValueError(f"cut {cut.id}: no supervision with custom['pl'] (run less.bin.pseudo_label first)")


def read_pl(cut) -> tuple[str, list[tuple[str, float]]]:
    """The teacher's 1-best and N-best ``[(text, score)]`` of a cut, validated."""
    pl = cut.supervisions[pl_supervision_index(cut)].custom["pl"]
    hypothesis = pl.get("hyp")
    if not isinstance(hypothesis, str):
        raise ValueError(f"cut {cut.id}: custom['pl']['hyp'] must be a string, got {type(hypothesis).__name__}")
    nbest: list[tuple[str, float]] = []
    for item in pl.get("nbest") or []:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise ValueError(f"cut {cut.id}: custom['pl']['nbest'] entries must be [text, score], got {item!r}")
        nbest.append((item[0], float(item[1]) if item[1] is not None else 0.0))
    return hypothesis, nbest


def with_llm_record(cut, record: dict[str, Any]):
    """A copy of ``cut`` whose pseudo-label carries ``record`` as ``pl["llm"]``."""
    from lhotse.utils import fastcopy

    index = pl_supervision_index(cut)
    supervision = cut.supervisions[index]
    custom = dict(supervision.custom)
    custom["pl"] = {**custom["pl"], "llm": record}
    supervisions = list(cut.supervisions)
    supervisions[index] = fastcopy(supervision, custom=custom)
    return fastcopy(cut, supervisions=supervisions)


@dataclass
class _Job:
    cut: Any
    hypothesis: str
    nbest: list[tuple[str, float]]
    input_sha: str = ""
    prompt: ChatPrompt | None = None
    texts: list[str] = field(default_factory=list)  # rescore: distinct hypotheses, as scored
    originals: list[str] = field(default_factory=list)  # rescore: the same, as the teacher wrote them
    teacher_scores: list[float] = field(default_factory=list)
    nbest_positions: list[int] = field(default_factory=list)  # rescore: index of each text in pl["nbest"]
    answer: str | None = None
    scores: list[float] | None = None
    error: str | None = None
    record: dict[str, Any] | None = None


class Corrector:
    """Runs one backend over a list of cuts with a cache; see the module docstring."""

    def __init__(self, backend: LLMBackend, config: CorrectionConfig, cache: AnswerCache | None = None) -> None:
        if config.mode not in MODES:
            raise ValueError(f"unknown mode {config.mode!r}; expected one of {MODES}")
        self.backend = backend
        self.config = config
        self.cache = cache if cache is not None else AnswerCache(None)
        if config.mode == "correct":
            template = load_template(config.task, config.lang, config.prompt_template)
            self.builder: PromptBuilder | None = PromptBuilder(template, config.task, config.lang, config.nbest_in_prompt)
            self.prompt_sha = self.builder.prompt_sha
        else:
            self.builder = None
            self.prompt_sha = rescore_prompt_sha(
                config.score_prefix, config.lang, config.normalize_for_scoring, config.append_eos
            )
        self.report = CorrectionReport()

    def _key(self, job: _Job) -> tuple[str, str, str, str]:
        return (job.cut.id, self.backend.model_id, self.prompt_sha, self.config.mode)

    def _record(self, job: _Job, status: str, text: str, extra: dict[str, Any] | None = None) -> None:
        job.record = {
            "model": self.backend.model_id,
            "prompt_sha": self.prompt_sha,
            "text": text,
            "status": status,
            "mode": self.config.mode,
            **(extra or {}),
        }

    # -- preparing jobs ----------------------------------------------------------------------

    def _prepare(self, cut) -> _Job:
        hypothesis, nbest = read_pl(cut)
        job = _Job(cut=cut, hypothesis=hypothesis, nbest=nbest)
        if not hypothesis.strip():
            self._record(job, "rejected:empty_hypothesis", hypothesis)
            return job
        if self.config.mode == "correct":
            assert self.builder is not None
            job.prompt = self.builder.build(hypothesis, [text for text, _ in nbest], request_id=cut.id)
            job.input_sha = input_sha(job.prompt.system, job.prompt.user)
        else:
            candidates = nbest or [(hypothesis, 0.0)]
            seen: dict[str, int] = {}
            for position, (text, score) in enumerate(candidates):
                scored = normalize(text, self.config.lang) if self.config.normalize_for_scoring else text
                if not scored or scored in seen:
                    continue  # an N-best often repeats a text up to punctuation: score it once
                seen[scored] = len(job.texts)
                job.texts.append(scored)
                job.originals.append(text)
                job.teacher_scores.append(score)
                job.nbest_positions.append(position)
            if len(job.texts) <= 1:  # nothing to choose between: no request
                chosen = normalize(job.originals[0], self.config.lang) if job.texts else hypothesis
                self._record(job, "ok", chosen, {"nbest_index": job.nbest_positions[0] if job.texts else 0})
                return job
            job.input_sha = input_sha(self.config.score_prefix, job.texts)
        entry = self.cache.get(self._key(job), job.input_sha)
        if entry is not None:
            self.report.cache_hits += 1
            job.answer, job.scores = entry.answer, entry.scores
        return job

    # -- asking the backend ------------------------------------------------------------------

    def _store(self, job: _Job, answer: str | None = None, scores: list[float] | None = None, tokens: int = 0) -> None:
        job.answer, job.scores = answer, scores
        self.report.answers_received += 1
        self.cache.append(
            CacheEntry(
                cut_id=job.cut.id,
                model=self.backend.model_id,
                prompt_sha=self.prompt_sha,
                mode=self.config.mode,
                input_sha=job.input_sha,
                answer=answer,
                scores=scores,
                tokens=tokens,
            )
        )

    def _fail(self, job: _Job, reason: str) -> None:
        job.error = reason
        if self.config.fail_fast:
            raise LLMRequestFailed(f"cut {job.cut.id}: LLM request failed ({reason}) and --fail-fast is set")

    def _ask(self, pending: list[_Job], progress) -> None:
        backend = self.backend
        if self.config.mode == "correct":
            # Similar lengths batch with little padding; a streaming server takes the whole list.
            pending = sorted(pending, key=lambda job: len(job.prompt.user))  # type: ignore[union-attr]
            chunk = len(pending) if getattr(backend, "answers_stream", False) else backend.parallelism
            for begin in range(0, len(pending), max(1, chunk)):
                jobs = pending[begin : begin + chunk]
                for index, result in backend.generate_iter([job.prompt for job in jobs]):  # type: ignore[misc]
                    job = jobs[index]
                    if result.ok:
                        self._store(job, answer=result.text, tokens=result.tokens_generated)
                    else:
                        self._fail(job, result.error or "unknown")
                    progress.update(1)
            return
        chunk = max(1, backend.parallelism)
        for begin in range(0, len(pending), chunk):
            jobs = pending[begin : begin + chunk]
            requests = [
                ScoreRequest(continuation=text, prefix=self.config.score_prefix, append_eos=self.config.append_eos,
                             request_id=job.cut.id)
                for job in jobs
                for text in job.texts
            ]
            scores = backend.score(requests)
            position = 0
            for job in jobs:
                job_scores = scores[position : position + len(job.texts)]
                position += len(job.texts)
                if any(math.isnan(s) for s in job_scores):
                    self._fail(job, "score_request")
                else:
                    self._store(job, scores=[float(s) for s in job_scores])
                progress.update(1)

    # -- turning answers into records --------------------------------------------------------

    def _finish(self, job: _Job) -> None:
        if job.record is not None:
            return
        if job.error is not None:
            self._record(job, f"failed:{job.error}", job.hypothesis)
        elif self.config.mode == "correct":
            cleaned = clean_answer(job.answer or "", job.hypothesis, self.config.lang, self.config.cleaning)
            if cleaned.accepted:
                self._record(job, "ok", cleaned.text)
            else:
                self._record(job, f"rejected:{cleaned.reason}", job.hypothesis)
        else:
            assert job.scores is not None
            best, best_combined = 0, -math.inf
            for index, (text, llm_score, teacher_score) in enumerate(zip(job.texts, job.scores, job.teacher_scores)):
                if self.config.length_norm:
                    llm_score /= max(1, len(scoring_units(text, self.config.lang)))
                combined = teacher_score + self.config.lm_weight * llm_score
                if combined > best_combined:
                    best, best_combined = index, combined
            chosen = normalize(job.originals[best], self.config.lang)
            self._record(job, "ok", chosen, {"nbest_index": job.nbest_positions[best]})

    def run(self, cuts: Sequence) -> list:
        """Correct ``cuts``; returns new cuts with ``pl["llm"]`` (inputs are not modified)."""
        from tqdm.auto import tqdm

        start = time.perf_counter()
        stats_before = (self.backend.stats.requests_sent, self.backend.stats.retries, self.backend.stats.tokens_generated)
        stale_before = self.cache.stale_hits
        jobs = [self._prepare(cut) for cut in cuts]
        pending = [job for job in jobs if job.record is None and job.answer is None and job.scores is None]
        logger.info(
            "%d cuts: %d answered from the cache, %d to ask %s (%s mode, prompt_sha %s)",
            len(jobs), self.report.cache_hits, len(pending), self.backend.model_id, self.config.mode,
            self.prompt_sha[:12],
        )
        request_start = time.perf_counter()
        disable = None if self.config.show_progress is None else not self.config.show_progress
        with tqdm(total=len(pending), unit="cut", desc="llm", disable=disable) as progress:
            if pending:
                self._ask(pending, progress)
        request_seconds = time.perf_counter() - request_start
        output = []
        for job in jobs:
            self._finish(job)
            assert job.record is not None
            output.append(with_llm_record(job.cut, job.record))
        self._fill_report(jobs, start, request_seconds, stats_before, stale_before)
        return output

    def _fill_report(self, jobs: list[_Job], start: float, request_seconds: float, stats_before, stale_before) -> None:
        report = self.report
        stats = self.backend.stats
        report.cuts = len(jobs)
        report.requests_sent = stats.requests_sent - stats_before[0]
        report.retries = stats.retries - stats_before[1]
        report.tokens_generated = stats.tokens_generated - stats_before[2]
        report.stale_cache_entries = self.cache.stale_hits - stale_before
        report.request_seconds = round(request_seconds, 3)
        report.tokens_per_second = round(report.tokens_generated / request_seconds, 2) if request_seconds > 0 else 0.0
        for job in jobs:
            status = job.record["status"]  # type: ignore[index]
            if status == "ok":
                report.ok += 1
                report.unchanged += int(job.record["text"] == normalize(job.hypothesis, self.config.lang))  # type: ignore[index]
            elif status.startswith("rejected:"):
                report.rejected += 1
                reason = status.split(":", 1)[1]
                report.rejection_reasons[reason] = report.rejection_reasons.get(reason, 0) + 1
            else:
                report.failures += 1
                reason = status.split(":", 1)[1]
                report.failure_reasons[reason] = report.failure_reasons.get(reason, 0) + 1
        report.wall_seconds = round(time.perf_counter() - start, 3)
        report.cuts_per_second = round(report.cuts / report.wall_seconds, 3) if report.wall_seconds > 0 else 0.0
