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

Prompts (``correct`` mode) are the instruction template of the task, a few-shot
completion template with k worked examples for base LMs (``few_shot``, examples from
:mod:`less.llm.fewshot`, never from test sets), or numbered groups of consecutive
segments of one recording (``context_segments > 1``, :mod:`less.llm.segments`; one
request and one cache entry per group, the answer split back per cut by number, a
group whose answer cannot be split rejected as a whole).

Every cut gets ``pl["llm"] = {"model", "prompt_sha", "text", "status", "mode"}``;
``status`` is ``ok``, ``rejected:<reason>`` or ``failed:<reason>``, and ``text`` is
the teacher's hypothesis unless the status is ``ok``. Answers go through
:class:`~less.llm.cache.AnswerCache` the moment they arrive, so an interrupted run
resumes where it stopped.

The cache keeps raw answers, not statuses: a rerun cleans them again. A cached answer
rejected for a reason that says more about the server than about the model (an empty
answer: :data:`TRANSIENT_REJECTIONS`) is asked again on a rerun unless
``retry_rejected`` is off; if asking fails, the cached answer stands. Other
rejections come back the same at temperature 0 and are kept.

Failures have a budget (``max_failed_fraction`` of the cuts): once more cuts failed
than it allows, the run stops asking (:class:`FailureBudgetExceeded`) instead of
spending every remaining cut's retries on a server that is gone. Before the first
request the backend is asked whether it can answer at all
(:meth:`~less.llm.base.LLMBackend.check_ready`).
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
from less.llm.fewshot import FewShotConfig, FewShotExample, draw_examples
from less.llm.prompts import PromptBuilder, load_template, rescore_prompt_sha
from less.llm.segments import (
    first_numbered_block,
    group_cuts,
    group_request_id,
    split_numbered_answer,
)
from less.pseudo.record import read_record, with_record

logger = logging.getLogger(__name__)

MODES = ("correct", "rescore")


# Rejections that may be the server's fault rather than the model's answer: an empty message is what
# a server in trouble may send with HTTP 200, and never a correction.
TRANSIENT_REJECTIONS = frozenset({"empty"})


class LLMRequestFailed(RuntimeError):
    """A request failed for good and the run was told to stop on failures."""


class FailureBudgetExceeded(LLMRequestFailed):
    """More cuts failed than ``max_failed_fraction`` allows; the run stopped asking."""

    def __init__(
        self, message: str, failures: int, failure_reasons: dict[str, int], cuts: int
    ) -> None:
        super().__init__(message)
        self.failures = failures
        self.failure_reasons = failure_reasons
        self.cuts = cuts


@dataclass
class CorrectionConfig:
    task: str = "asr"
    lang: str = "zh"
    mode: str = "correct"
    prompt_template: str | None = None  # file; None: the packaged one for task/lang
    nbest_in_prompt: int = 0
    few_shot: FewShotConfig = field(default_factory=FewShotConfig)
    context_segments: int = 1  # consecutive segments of one recording per request
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    # rescore mode
    lm_weight: float = 0.5
    length_norm: bool = False
    score_prefix: str = ""
    normalize_for_scoring: bool = True
    append_eos: bool = True
    fail_fast: bool = False
    max_failed_fraction: float | None = None  # None: no budget (every cut is asked whatever fails)
    retry_rejected: bool = True  # ask cached answers rejected as TRANSIENT_REJECTIONS again
    show_progress: bool | None = (
        None  # False: no progress bar (else: redrawn on a terminal, lines in a log)
    )


@dataclass
class CorrectionReport:
    cuts: int = 0
    ok: int = 0
    unchanged: int = 0  # ok and equal to the teacher's hypothesis
    cache_hits: int = 0
    reasked_rejected: int = 0  # cached answers rejected as transient, asked again
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
            self.cuts,
            self.wall_seconds,
            self.cuts_per_second,
            self.ok,
            self.unchanged,
            self.rejected,
            self.rejection_reasons or "",
            self.failures,
            self.failure_reasons or "",
        )
        logger.info(
            "requests sent: %d (%d retries), answers received: %d, cache hits: %d (stale: %d), "
            "generated tokens: %d (%.1f tokens/s over %.1f s of requests)",
            self.requests_sent,
            self.retries,
            self.answers_received,
            self.cache_hits,
            self.stale_cache_entries,
            self.tokens_generated,
            self.tokens_per_second,
            self.request_seconds,
        )


def read_pl(cut) -> tuple[str, list[tuple[str, float]]]:
    """The teacher's 1-best and N-best ``[(text, score)]`` of a cut, validated."""
    record = read_record(cut)
    return record.hyp, record.nbest


def with_llm_record(cut, answer: dict[str, Any]):
    """A copy of ``cut`` whose pseudo-label carries ``answer`` as ``pl["llm"]``."""
    record = read_record(cut)
    record.llm = answer
    return with_record(cut, record)


@dataclass
class _Job:
    cut: Any
    hypothesis: str
    nbest: list[tuple[str, float]]
    input_sha: str = ""
    prompt: ChatPrompt | None = None
    texts: list[str] = field(default_factory=list)  # rescore: distinct hypotheses, as scored
    originals: list[str] = field(
        default_factory=list
    )  # rescore: the same, as the teacher wrote them
    teacher_scores: list[float] = field(default_factory=list)
    nbest_positions: list[int] = field(
        default_factory=list
    )  # rescore: index of each text in pl["nbest"]
    answer: str | None = None
    scores: list[float] | None = None
    error: str | None = None
    record: dict[str, Any] | None = None
    segment: dict[str, Any] | None = (
        None  # {"size", "position"} of its group (context_segments > 1)
    )
    fallback: str | None = (
        None  # a cached answer rejected as transient: it stands if asking again fails
    )


@dataclass
class _Group:
    """One request for consecutive segments of a recording (``context_segments > 1``)."""

    jobs: list[_Job]  # in time order = prompt numbering
    request_id: str
    prompt: ChatPrompt
    input_sha: str
    answer: str | None = None
    error: str | None = None
    fallback: str | None = None  # as _Job.fallback


def first_line(answer: str) -> str:
    """The answer of a completion prompt: its first non-empty line (the model goes on with
    a new made-up example after it)."""
    for line in answer.replace("\r\n", "\n").split("\n"):
        if line.strip():
            return line
    return ""


class Corrector:
    """Runs one backend over a list of cuts with a cache; see the module docstring."""

    def __init__(
        self,
        backend: LLMBackend,
        config: CorrectionConfig,
        cache: AnswerCache | None = None,
        few_shot_examples: Sequence[FewShotExample] | None = None,
    ) -> None:
        """``few_shot_examples``: already drawn with ``draw_examples(config.few_shot, ...)`` (else drawn here)."""
        if config.mode not in MODES:
            raise ValueError(f"unknown mode {config.mode!r}; expected one of {MODES}")
        if config.mode == "rescore" and (config.few_shot.count > 0 or config.context_segments > 1):
            raise ValueError(
                "few-shot examples and --llm-context-segments are for --mode correct (prompts), "
                "not rescore"
            )
        self.backend = backend
        self.config = config
        self.cache = cache if cache is not None else AnswerCache(None)
        self.few_shot_examples: list[FewShotExample] = []
        if config.mode == "correct":
            variant = "_".join(
                name
                for name, used in (
                    ("fewshot", config.few_shot.count > 0),
                    ("segments", config.context_segments > 1),
                )
                if used
            )
            template = load_template(config.task, config.lang, config.prompt_template, variant)
            self.few_shot_examples = (
                list(few_shot_examples)
                if few_shot_examples is not None
                else draw_examples(config.few_shot, config.task, config.lang)
            )
            self.builder: PromptBuilder | None = PromptBuilder(
                template,
                config.task,
                config.lang,
                config.nbest_in_prompt,
                examples=[example.pair() for example in self.few_shot_examples],
                context_segments=config.context_segments,
            )
            self.prompt_sha = self.builder.prompt_sha
        else:
            self.builder = None
            self.prompt_sha = rescore_prompt_sha(
                config.score_prefix, config.lang, config.normalize_for_scoring, config.append_eos
            )
        self.report = CorrectionReport()
        self._failed_cuts = 0
        self._failure_reasons: dict[str, int] = {}
        self._allowed_failures: int | None = None

    def _key(self, job: _Job) -> tuple[str, str, str, str]:
        return (job.cut.id, self.backend.model_id, self.prompt_sha, self.config.mode)

    def _record(
        self, job: _Job, status: str, text: str, extra: dict[str, Any] | None = None
    ) -> None:
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
            if self.config.context_segments > 1:
                return job  # asked in a group: see _make_groups
            job.prompt = self.builder.build(
                hypothesis, [text for text, _ in nbest], request_id=cut.id
            )
            job.input_sha = input_sha(job.prompt.system, job.prompt.user)
        else:
            candidates = nbest or [(hypothesis, 0.0)]
            seen: dict[str, int] = {}
            for position, (text, score) in enumerate(candidates):
                scored = (
                    normalize(text, self.config.lang) if self.config.normalize_for_scoring else text
                )
                if not scored or scored in seen:
                    continue  # an N-best often repeats a text up to punctuation: score it once
                seen[scored] = len(job.texts)
                job.texts.append(scored)
                job.originals.append(text)
                job.teacher_scores.append(score)
                job.nbest_positions.append(position)
            if len(job.texts) <= 1:  # nothing to choose between: no request
                chosen = normalize(job.originals[0], self.config.lang) if job.texts else hypothesis
                self._record(
                    job, "ok", chosen, {"nbest_index": job.nbest_positions[0] if job.texts else 0}
                )
                return job
            job.input_sha = input_sha(self.config.score_prefix, job.texts)
        entry = self.cache.get(self._key(job), job.input_sha)
        if (
            entry is not None
            and self.config.mode == "correct"
            and self._transient_rejection(job, entry.answer)
        ):
            self.report.reasked_rejected += 1
            job.fallback = entry.answer or ""
        elif entry is not None:
            self.report.cache_hits += 1
            job.answer, job.scores = entry.answer, entry.scores
        return job

    def _clean(self, job: _Job, answer: str):
        assert self.builder is not None
        if self.builder.template.completion:
            answer = first_line(answer)
        return clean_answer(answer, job.hypothesis, self.config.lang, self.config.cleaning)

    def _transient_rejection(self, job: _Job, answer: str | None) -> bool:
        """Whether a cached answer is rejected for a reason worth asking again (see the module docstring)."""
        if not self.config.retry_rejected:
            return False
        return self._clean(job, answer or "").reason in TRANSIENT_REJECTIONS

    def _make_groups(self, jobs: list[_Job]) -> list[_Group]:
        """Group the cuts still to correct K at a time per recording; answers come from the cache
        when the group (same cuts, same texts) was answered before."""
        assert self.builder is not None
        waiting = [job for job in jobs if job.record is None]
        groups = []
        for indices in group_cuts([job.cut for job in waiting], self.config.context_segments):
            members = [waiting[index] for index in indices]
            request_id = group_request_id([job.cut.id for job in members])
            prompt = self.builder.build_group(
                [job.hypothesis for job in members], request_id=request_id
            )
            group = _Group(members, request_id, prompt, input_sha(prompt.system, prompt.user))
            for position, job in enumerate(members):
                job.segment = {"size": len(members), "position": position}
            key = (request_id, self.backend.model_id, self.prompt_sha, self.config.mode)
            entry = self.cache.get(key, group.input_sha)
            if (
                entry is not None
                and self.config.retry_rejected
                and self._split_group(entry.answer or "", len(members)).reason
                in TRANSIENT_REJECTIONS
            ):
                self.report.reasked_rejected += len(members)
                group.fallback = entry.answer or ""
            elif entry is not None:
                self.report.cache_hits += len(members)
                self._distribute(group, entry.answer or "")
            groups.append(group)
        return groups

    def _split_group(self, answer: str, count: int):
        """A group's answer as one text per segment (see :func:`split_numbered_answer`); a base
        LM's completion is read up to the end of its first numbered block."""
        assert self.builder is not None
        if self.builder.template.completion:
            answer = first_numbered_block(answer)
        return split_numbered_answer(answer, count)

    def _distribute(self, group: _Group, answer: str) -> None:
        """Split a group's answer back per cut (by number), or reject every cut of the group."""
        group.answer = answer
        split = self._split_group(answer, len(group.jobs))
        for position, job in enumerate(group.jobs):
            if split.accepted:
                job.answer = split.texts[position]
            else:
                self._record(
                    job, f"rejected:{split.reason}", job.hypothesis, {"segments": job.segment}
                )

    # -- asking the backend ------------------------------------------------------------------

    def _store(
        self,
        job: _Job | _Group,
        answer: str | None = None,
        scores: list[float] | None = None,
        tokens: int = 0,
    ) -> None:
        if isinstance(job, _Group):
            self._distribute(job, answer or "")
        else:
            job.answer, job.scores = answer, scores
        self.report.answers_received += 1
        self.cache.append(
            CacheEntry(
                cut_id=job.request_id if isinstance(job, _Group) else job.cut.id,
                model=self.backend.model_id,
                prompt_sha=self.prompt_sha,
                mode=self.config.mode,
                input_sha=job.input_sha,
                answer=answer,
                scores=scores,
                tokens=tokens,
            )
        )

    def _fail(self, job: _Job | _Group, reason: str) -> None:
        if (
            job.fallback is not None
        ):  # asked again a cached answer rejected as transient: keep that one
            if isinstance(job, _Group):
                self._distribute(job, job.fallback)
            else:
                job.answer = job.fallback
            return
        job.error = reason
        if isinstance(job, _Group):
            for member in job.jobs:
                member.error = reason
        if self.config.fail_fast:
            what = f"cuts {job.request_id}" if isinstance(job, _Group) else f"cut {job.cut.id}"
            raise LLMRequestFailed(f"{what}: LLM request failed ({reason}) and --fail-fast is set")
        failed = len(job.jobs) if isinstance(job, _Group) else 1
        self._failed_cuts += failed
        self._failure_reasons[reason] = self._failure_reasons.get(reason, 0) + failed
        if self._allowed_failures is not None and self._failed_cuts > self._allowed_failures:
            where = f" from {self.backend.endpoint}" if self.backend.endpoint else ""
            reasons = ", ".join(f"{name}: {n}" for name, n in sorted(self._failure_reasons.items()))
            raise FailureBudgetExceeded(
                f"{self._failed_cuts} of {self.report.cuts} cuts failed to get an answer{where} ({reasons}), "
                f"more than --max-failed-fraction {self.config.max_failed_fraction:g} allows "
                f"({self._allowed_failures}); stopped asking",
                self._failed_cuts,
                dict(self._failure_reasons),
                self.report.cuts,
            )

    def _ask(self, pending: Sequence[_Job | _Group], progress) -> None:
        backend = self.backend
        if self.config.mode == "correct":
            # Similar lengths batch with little padding; a streaming server takes the whole list.
            pending = sorted(pending, key=lambda job: len(job.prompt.user))  # type: ignore[union-attr]
            chunk = (
                len(pending) if getattr(backend, "answers_stream", False) else backend.parallelism
            )
            for begin in range(0, len(pending), max(1, chunk)):
                jobs = pending[begin : begin + chunk]
                for index, result in backend.generate_iter([job.prompt for job in jobs]):  # type: ignore[misc]
                    job = jobs[index]
                    if result.ok:
                        self._store(job, answer=result.text, tokens=result.tokens_generated)
                    else:
                        self._fail(job, result.error or "unknown")
                    progress.update(len(job.jobs) if isinstance(job, _Group) else 1)
            return
        chunk = max(1, backend.parallelism)
        for begin in range(0, len(pending), chunk):
            jobs = pending[begin : begin + chunk]
            requests = [
                ScoreRequest(
                    continuation=text,
                    prefix=self.config.score_prefix,
                    append_eos=self.config.append_eos,
                    request_id=job.cut.id,
                )
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
            cleaned = self._clean(job, job.answer or "")
            extra = {"segments": job.segment} if job.segment is not None else None
            if cleaned.accepted:
                self._record(job, "ok", cleaned.text, extra)
            else:
                self._record(job, f"rejected:{cleaned.reason}", job.hypothesis, extra)
        else:
            assert job.scores is not None
            best, best_combined = 0, -math.inf
            for index, (text, llm_score, teacher_score) in enumerate(
                zip(job.texts, job.scores, job.teacher_scores)
            ):
                if self.config.length_norm:
                    llm_score /= max(1, len(scoring_units(text, self.config.lang)))
                combined = teacher_score + self.config.lm_weight * llm_score
                if combined > best_combined:
                    best, best_combined = index, combined
            chosen = normalize(job.originals[best], self.config.lang)
            self._record(job, "ok", chosen, {"nbest_index": job.nbest_positions[best]})

    def run(self, cuts: Sequence) -> list:
        """Correct ``cuts``; returns new cuts with ``pl["llm"]`` (inputs are not modified)."""
        from less.utils import progress_bar

        start = time.perf_counter()
        stats_before = (
            self.backend.stats.requests_sent,
            self.backend.stats.retries,
            self.backend.stats.tokens_generated,
        )
        stale_before = self.cache.stale_hits
        jobs = [self._prepare(cut) for cut in cuts]
        pending: list[_Job | _Group]
        self.report.cuts = len(jobs)
        self._failed_cuts, self._failure_reasons = 0, {}
        fraction = self.config.max_failed_fraction
        self._allowed_failures = (
            None if fraction is None else int(math.floor(fraction * len(jobs) + 1e-9))
        )
        if self.config.mode == "correct" and self.config.context_segments > 1:
            groups = self._make_groups(jobs)
            pending = [group for group in groups if group.answer is None]
            logger.info(
                "%d groups of up to %d consecutive segments, %d to ask",
                len(groups),
                self.config.context_segments,
                len(pending),
            )
        else:
            pending = [
                job
                for job in jobs
                if job.record is None and job.answer is None and job.scores is None
            ]
        logger.info(
            "%d cuts: %d answered from the cache, %d to ask %s (%s mode, prompt_sha %s)",
            len(jobs),
            self.report.cache_hits,
            len(pending),
            self.backend.model_id,
            self.config.mode,
            self.prompt_sha[:12],
        )
        if self.report.reasked_rejected:
            logger.info(
                "%d cuts whose cached answer was rejected as %s are asked again (keep them: "
                "--keep-rejected)",
                self.report.reasked_rejected,
                "/".join(sorted(TRANSIENT_REJECTIONS)),
            )
        if pending:
            self.backend.check_ready()
        request_start = time.perf_counter()
        total = sum(len(unit.jobs) if isinstance(unit, _Group) else 1 for unit in pending)
        # on a terminal it redraws; into a log file, a line every 30 s (no monitor thread)
        with progress_bar(
            total=total, unit="cut", desc="llm", disable=self.config.show_progress is False
        ) as progress:
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

    def _fill_report(
        self, jobs: list[_Job], start: float, request_seconds: float, stats_before, stale_before
    ) -> None:
        report = self.report
        stats = self.backend.stats
        report.cuts = len(jobs)
        report.requests_sent = stats.requests_sent - stats_before[0]
        report.retries = stats.retries - stats_before[1]
        report.tokens_generated = stats.tokens_generated - stats_before[2]
        report.stale_cache_entries = self.cache.stale_hits - stale_before
        report.request_seconds = round(request_seconds, 3)
        report.tokens_per_second = (
            round(report.tokens_generated / request_seconds, 2) if request_seconds > 0 else 0.0
        )
        for job in jobs:
            status = job.record["status"]  # type: ignore[index]
            if status == "ok":
                report.ok += 1
                report.unchanged += int(
                    job.record["text"] == normalize(job.hypothesis, self.config.lang)
                )  # type: ignore[index]
            elif status.startswith("rejected:"):
                report.rejected += 1
                reason = status.split(":", 1)[1]
                report.rejection_reasons[reason] = report.rejection_reasons.get(reason, 0) + 1
            else:
                report.failures += 1
                reason = status.split(":", 1)[1]
                report.failure_reasons[reason] = report.failure_reasons.get(reason, 0) + 1
        report.wall_seconds = round(time.perf_counter() - start, 3)
        report.cuts_per_second = (
            round(report.cuts / report.wall_seconds, 3) if report.wall_seconds > 0 else 0.0
        )
