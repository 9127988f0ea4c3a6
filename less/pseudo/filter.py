"""The LESS filter: keep a pseudo-labelled cut only where the LLM changed little.

``hypo_wer`` is the edit-distance rate of the LLM's text against the teacher's 1-best
(CER for Mandarin, WER otherwise); the paper keeps cuts with ``hypo_wer <= 0.1``. The
idea: when the LLM rewrites much of an utterance, either the teacher was badly wrong or
the LLM hallucinated — neither label is worth training on. Optional extra filters:
teacher confidence, speaking rate (characters per second) and label/teacher length ratio,
and WeNet's noisy-student LM filter (``max_lm_cer``): the edit-distance rate between the
teacher's 1-best and the same audio decoded with an n-gram LM (``pl["lm"]["text"]``,
``less.bin.pseudo_label --lm``), dropped above the threshold.

Cuts whose LLM answer was rejected or failed (``pl["llm"]["status"] != "ok"``) are dropped
unless ``keep_llm_failures``: the LLM gave no usable verdict on them.

The label a kept cut trains on is the LLM's text (``label="llm"``, LESS) or the teacher's
(``label="teacher"``, e.g. noisy-student training without an LLM, where ``max_hypo_wer``
is ``None``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from less.data.text import normalize
from less.metrics import error_rate, hypo_wer
from less.pseudo.record import (
    PseudoLabelRecord,
    pl_supervision_index,
    read_record,
    with_record,
)

log = logging.getLogger("less.pseudo.filter")


@dataclass
class FilterConfig:
    lang: str  # language of pl["hyp"] (zh for Mandarin ASR, en for translations)
    max_hypo_wer: float | None = 0.1
    label: str = "llm"  # llm | teacher
    keep_llm_failures: bool = False
    min_confidence: float = 0.0
    min_chars_per_second: float = 0.0
    max_chars_per_second: float = float("inf")
    max_length_ratio: float = float("inf")  # max(len(llm), len(teacher)) / min(...) in units
    max_lm_cer: float | None = None  # WeNet's LM filter: teacher vs LM-decoded text


@dataclass
class Decision:
    kept: bool
    reason: str = ""
    hypo_wer: float | None = None


def _units(text: str, lang: str) -> int:
    text = normalize(text, lang)
    return len(text.replace(" ", "")) if lang == "zh" else len(text.split())


def decide(pl: PseudoLabelRecord | dict[str, Any], duration: float, cfg: FilterConfig) -> Decision:
    """Whether to keep one cut, why not, and its hypo_wer (None without an LLM answer)."""
    if isinstance(pl, dict):
        pl = PseudoLabelRecord.from_custom(pl)
    teacher = pl.hyp
    llm = pl.llm
    wer = None
    if llm is not None:
        wer = hypo_wer(teacher, llm.get("text") or "", cfg.lang)
    if cfg.label == "llm" and llm is None:
        raise ValueError("label=llm but the cut has no LLM answer (run llm_correct first)")
    if llm is not None and llm.get("status", "ok") != "ok" and not cfg.keep_llm_failures:
        return Decision(False, f"llm {llm.get('status')}", wer)
    label = (llm.get("text") if (cfg.label == "llm" and llm) else teacher) or ""
    if not normalize(label, cfg.lang):
        return Decision(False, "empty label", wer)
    if pl.src_hyp is not None and not pl.src_hyp.strip():
        return Decision(False, "empty source transcript", wer)  # AST: nothing for the CTC task
    if cfg.max_hypo_wer is not None:
        if wer is None:
            raise ValueError("a hypo_wer threshold needs LLM answers (run llm_correct first)")
        if wer > cfg.max_hypo_wer:
            return Decision(False, "hypo_wer", wer)
    if cfg.max_lm_cer is not None:
        if pl.lm is None:
            raise ValueError(
                "--max-lm-cer needs the LM decoding of each cut (less.bin.pseudo_label --lm)"
            )
        if hypo_wer(teacher, pl.lm.get("text") or "", cfg.lang) > cfg.max_lm_cer:
            return Decision(False, "lm_cer", wer)
    if pl.confidence < cfg.min_confidence:
        return Decision(False, "confidence", wer)
    rate = _units(label, cfg.lang) / max(duration, 1e-6)
    if not cfg.min_chars_per_second <= rate <= cfg.max_chars_per_second:
        return Decision(False, "chars per second", wer)
    if cfg.max_length_ratio != float("inf"):
        a, b = _units(label, cfg.lang), _units(teacher, cfg.lang)
        if min(a, b) == 0 or max(a, b) / min(a, b) > cfg.max_length_ratio:
            return Decision(False, "length ratio", wer)
    return Decision(True, "", wer)


@dataclass
class FilterReport:
    config: dict[str, Any]
    cuts_in: int = 0
    hours_in: float = 0.0
    cuts_kept: int = 0
    hours_kept: float = 0.0
    dropped_by: dict[str, int] = field(default_factory=dict)
    label_error: dict[str, float] = field(
        default_factory=dict
    )  # true error rates (hidden references)
    mean_hypo_wer: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [
            f"cuts kept: {self.cuts_kept} of {self.cuts_in} ({100 * self.cuts_kept / max(self.cuts_in, 1):.1f}%)",
            f"hours kept: {self.hours_kept:.3f} of {self.hours_in:.3f}",
            "dropped by: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.dropped_by.items())) or "nothing"),
        ]
        if self.mean_hypo_wer is not None:
            out.append(f"mean hypo_wer: {self.mean_hypo_wer:.4f}")
        for name, value in self.label_error.items():
            out.append(f"{name}: {100 * value:.2f}%")
        return out


def reference_of(sup, task: str) -> str | None:
    """The hidden true text of what ``pl["hyp"]`` transcribes (``asr``, in any language) or
    translates (``ast``), when known."""
    custom = sup.custom or {}
    if task == "ast":
        return (custom.get("ref_translated_text") or {}).get("en")
    return custom.get("ref_text")


def apply_label(cut, text: str, task: str):
    """A copy of the cut with one supervision, the pseudo-labelled one, which trains on
    ``text`` (transcript or translation)."""
    from lhotse.utils import fastcopy

    sup = cut.supervisions[pl_supervision_index(cut)]
    custom = dict(sup.custom or {})
    if task == "ast":
        custom["translated_text"] = {"en": text}
        new_sup = fastcopy(sup, custom=custom)
    else:
        new_sup = fastcopy(sup, text=text, custom=custom)
    return fastcopy(cut, supervisions=[new_sup])


def filter_cuts(cuts, cfg: FilterConfig, task: str) -> tuple[list, list, FilterReport]:
    """Return (kept cuts with their training label applied, all cuts annotated, report)."""

    report = FilterReport(config=asdict(cfg))
    kept, annotated = [], []
    refs: dict[str, list[str]] = {
        k: [] for k in ("teacher_all", "llm_all", "label_kept", "teacher_dropped")
    }
    hyps: dict[str, list[str]] = {k: [] for k in refs}
    wers = []
    for cut in cuts:
        pl = read_record(cut)
        decision = decide(pl, cut.duration, cfg)
        pl.hypo_wer, pl.kept, pl.drop_reason = (
            decision.hypo_wer,
            decision.kept,
            decision.reason or None,
        )
        cut = with_record(cut, pl)
        sup = cut.supervisions[pl_supervision_index(cut)]
        annotated.append(cut)
        report.cuts_in += 1
        report.hours_in += cut.duration / 3600
        if decision.hypo_wer is not None:
            wers.append(decision.hypo_wer)
        llm_text = pl.llm_text
        label = llm_text if (cfg.label == "llm" and llm_text is not None) else pl.hyp
        if decision.kept:
            report.cuts_kept += 1
            report.hours_kept += cut.duration / 3600
            kept.append(apply_label(cut, label, task))
        else:
            report.dropped_by[decision.reason] = report.dropped_by.get(decision.reason, 0) + 1
        ref = reference_of(sup, task)
        if ref is not None:
            refs["teacher_all"].append(ref)
            hyps["teacher_all"].append(pl.hyp)
            if llm_text is not None:
                refs["llm_all"].append(ref)
                hyps["llm_all"].append(llm_text)
            key = "label_kept" if decision.kept else "teacher_dropped"
            refs[key].append(ref)
            hyps[key].append(label if decision.kept else pl.hyp)
    names = {
        "teacher_all": "teacher label error, all cuts",
        "llm_all": "LLM label error, all cuts",
        "label_kept": "training label error, kept cuts",
        "teacher_dropped": "teacher label error, dropped cuts",
    }
    for key, name in names.items():
        if refs[key]:
            report.label_error[name] = error_rate(refs[key], hyps[key], cfg.lang).rate
    report.mean_hypo_wer = sum(wers) / len(wers) if wers else None
    return kept, annotated, report
