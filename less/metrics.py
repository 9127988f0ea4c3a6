"""Scoring: WER/CER with alignments, multi-reference BLEU, and the LESS filter's hypo-WER.

All text passes through :func:`less.data.text.normalize` (via ``scoring_units``) first, so
that formatting never counts as an error: Mandarin is scored in characters (CER, Latin
words kept whole), Spanish and English in words (WER).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import kaldialign
import sacrebleu

from less.data.text import normalize, scoring_units

EPS = "*"
"""Placeholder for the missing side of an insertion or deletion in an alignment."""


def rate_name(lang: str) -> str:
    """``CER`` for Mandarin, ``WER`` for languages scored in words."""
    return "CER" if lang == "zh" else "WER"


@dataclass
class UtteranceErrors:
    """Alignment of one reference/hypothesis pair in scoring units."""

    ref: list[str]
    hyp: list[str]
    alignment: list[tuple[str, str]]  # (ref unit or EPS, hyp unit or EPS)
    insertions: int
    deletions: int
    substitutions: int

    @property
    def errors(self) -> int:
        return self.insertions + self.deletions + self.substitutions


@dataclass
class ErrorRate:
    """Corpus error counts. ``rate`` is a fraction (``percent`` for reports).

    With an empty reference set, ``rate = errors / max(ref_count, 1)`` (see :func:`hypo_wer`).
    """

    name: str  # "WER" or "CER"
    errors: int
    insertions: int
    deletions: int
    substitutions: int
    ref_count: int
    rate: float
    utterances: list[UtteranceErrors] = field(default_factory=list, repr=False)

    @property
    def percent(self) -> float:
        return 100.0 * self.rate

    @property
    def correct(self) -> int:
        return self.ref_count - self.deletions - self.substitutions

    def summary(self) -> str:
        """Kaldi's summary line: ``%WER 12.34 [ 123 / 1000, 10 ins, 20 del, 93 sub ]``."""
        return (
            f"%{self.name} {self.percent:.2f} [ {self.errors} / {self.ref_count}, "
            f"{self.insertions} ins, {self.deletions} del, {self.substitutions} sub ]"
        )


def align_units(ref: Sequence[str], hyp: Sequence[str]) -> UtteranceErrors:
    """Minimum edit-distance alignment of two unit sequences, with its error counts."""
    alignment = kaldialign.align(list(ref), list(hyp), EPS) if (ref or hyp) else []
    insertions = sum(1 for r, _ in alignment if r == EPS)
    deletions = sum(1 for _, h in alignment if h == EPS)
    substitutions = sum(1 for r, h in alignment if r != EPS and h != EPS and r != h)
    return UtteranceErrors(list(ref), list(hyp), alignment, insertions, deletions, substitutions)


def error_rate(refs: Sequence[str], hyps: Sequence[str], lang: str) -> ErrorRate:
    """Corpus WER (``es``/``en``) or CER (``zh``) of ``hyps`` against ``refs``, after normalisation.

    Errors are summed over utterances and divided by the total reference units, as Kaldi
    and icefall do (not an average of per-utterance rates).
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    utterances = [
        align_units(scoring_units(r, lang), scoring_units(h, lang)) for r, h in zip(refs, hyps)
    ]
    insertions = sum(u.insertions for u in utterances)
    deletions = sum(u.deletions for u in utterances)
    substitutions = sum(u.substitutions for u in utterances)
    ref_count = sum(len(u.ref) for u in utterances)
    errors = insertions + deletions + substitutions
    return ErrorRate(
        name=rate_name(lang),
        errors=errors,
        insertions=insertions,
        deletions=deletions,
        substitutions=substitutions,
        ref_count=ref_count,
        rate=errors / max(ref_count, 1),
        utterances=utterances,
    )


def hypo_wer(teacher_text: str, llm_text: str, lang: str) -> float:
    """Edit-distance rate of the LLM's text against the teacher's 1-best as the reference.

    LESS keeps a pseudo-label only when this is small (<= 0.1 in the paper): the LLM may
    fix a few units but must not rewrite the utterance. CER for ``zh``, WER otherwise,
    both after :func:`~less.data.text.normalize`.

    Edge cases: 0.0 when both texts are empty (after normalisation). When only the teacher
    text is empty the rate is ``errors / max(ref_units, 1)``, i.e. the number of units the
    LLM added: at least 1.0, so any text the LLM invents for an empty teacher output fails
    every sensible threshold; the value stays finite so it serialises to JSON.
    """
    ref = scoring_units(teacher_text, lang)
    hyp = scoring_units(llm_text, lang)
    if not ref and not hyp:
        return 0.0
    return align_units(ref, hyp).errors / max(len(ref), 1)


def _reference_streams(refs_multi: Sequence[str | Sequence[str]]) -> list[list[str | None]]:
    """Transpose per-segment reference lists into sacrebleu's reference streams.

    sacrebleu wants one stream per reference index, each as long as the hypotheses.
    Segments with fewer references than the maximum are padded with ``None``, which
    sacrebleu drops for that segment (an empty string would count as a real, empty
    reference and change the brevity penalty).
    """
    per_segment = [[r] if isinstance(r, str) else list(r) for r in refs_multi]
    for index, refs in enumerate(per_segment):
        if not refs:
            raise ValueError(f"segment {index} has no reference")
    num_streams = max(len(refs) for refs in per_segment)
    return [
        [refs[k] if k < len(refs) else None for refs in per_segment] for k in range(num_streams)
    ]


def bleu(
    hyps: Sequence[str], refs_multi: Sequence[str | Sequence[str]], normalise: bool = True
) -> sacrebleu.metrics.BLEUScore:
    """Corpus BLEU (sacrebleu, 13a tokenisation) with any number of references per segment.

    Args:
        hyps: one translation per segment.
        refs_multi: per segment, a list of reference translations (a bare string is one
            reference). Fisher dev/dev2/test have 4 references, Callhome 1; segments may
            differ in count (padded with ``None`` as sacrebleu requires, see
            :func:`_reference_streams`).
        normalise: pass hypotheses and references through ``normalize(text, "en")`` first:
            lower-cased, punctuation removed, digits spelled out. This is the
            case-insensitive, punctuation-free BLEU ESPnet reports for Fisher/Callhome
            (``lc.rm``); set False for cased, punctuated sacrebleu BLEU on raw text.

    Returns:
        sacrebleu's ``BLEUScore``: ``.score`` (0-100), ``.counts``, ``.bp``, ``.sys_len``,
        ``.ref_len``; ``str()`` gives the usual one-line report.
    """
    if len(hyps) != len(refs_multi):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs_multi)} reference sets")
    if not hyps:
        raise ValueError("BLEU of an empty corpus is undefined")
    streams = _reference_streams(refs_multi)
    if normalise:
        hyps = [normalize(h, "en") for h in hyps]
        streams = [
            [None if r is None else normalize(r, "en") for r in stream] for stream in streams
        ]
    return sacrebleu.corpus_bleu(list(hyps), streams)
