"""icefall-style result files: ``recogs-*``, ``errs-*``, ``wer-summary-*``, ``bleu-*``.

Users of icefall read these files by habit, and scripts grep them, so names and layouts
follow icefall's ``save_results``: for each test set and each decoding setting (e.g.
``attention_scale_0.5``)

* ``recogs-<test>-<setting>-<suffix>.txt``: per cut, ``cut_id:\\tref=[...]`` then
  ``cut_id:\\thyp=[...]`` (scoring units after normalisation), cuts sorted by id;
* ``errs-<test>-<setting>-<suffix>.txt``: Kaldi's summary line
  ``%WER 12.34 [ 123 / 1000, 10 ins, 20 del, 93 sub ]`` (``%CER`` for Mandarin), per-cut
  alignments with errors as ``(ref->hyp)`` (``*`` marks the missing side), then the most
  common substitutions, deletions and insertions and per-unit statistics;
* ``wer-summary-<test>-<suffix>.txt``: ``settings\\tWER`` then one line per setting,
  best first;
* for translation, ``bleu-<test>-<setting>-<suffix>.txt`` (sacrebleu's report) and
  ``bleu-summary-<test>-<suffix>.txt`` (``settings\\tBLEU``, best first).

An empty setting name drops that part (``recogs-<test>-<suffix>.txt``). ``suffix`` is the
model part of the name, e.g. ``epoch-30_avg-9``. Every file is written atomically.
"""

from __future__ import annotations

import ast
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import sacrebleu

from less.data.text import normalize
from less.metrics import EPS, ErrorRate, bleu, error_rate, rate_name
from less.utils import write_text_atomic

AsrResult = tuple[str, str, str]
"""(cut_id, reference text, hypothesis text)."""

AstResult = tuple[str, str | Sequence[str], str]
"""(cut_id, reference translation(s), hypothesis translation)."""


def result_filename(kind: str, test_set: str, setting: str, suffix: str) -> str:
    """``<kind>-<test>-<setting>-<suffix>.txt`` with empty parts left out."""
    return "-".join(part for part in (kind, test_set, setting, suffix) if part) + ".txt"


def format_recogs(
    cut_ids: Sequence[str], refs: Sequence[Sequence[list[str]]], hyps: Sequence[list[str]]
) -> str:
    """``recogs`` text: ref line(s) then hyp line per cut, sorted by cut id."""
    lines = []
    for cut_id, cut_refs, hyp in sorted(zip(cut_ids, refs, hyps), key=lambda item: item[0]):
        for ref in cut_refs:
            lines.append(f"{cut_id}:\tref={ref!r}")
        lines.append(f"{cut_id}:\thyp={hyp!r}")
    return "\n".join(lines) + ("\n" if lines else "")


RecogsEntry = tuple[str, list[list[str]], list[str]]
"""(cut_id, reference(s) in scoring units, hypothesis in scoring units)."""


def read_recogs(path: str | os.PathLike) -> list[RecogsEntry]:
    """Read a ``recogs`` file back: per cut, its reference(s) and hypothesis, in file order.

    The inverse of :func:`format_recogs`, for statistics that need per-utterance results
    (``less.stats``' paired bootstrap). Units are stored as Python list literals, so they
    are parsed with :func:`ast.literal_eval` (never ``eval``).
    """
    path = Path(path)
    entries: list[RecogsEntry] = []
    pending_id, pending_refs = None, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        cut_id, sep, rest = line.partition(":\t")
        kind, value = rest[:4], rest[4:]
        try:
            units = ast.literal_eval(value) if sep and kind in ("ref=", "hyp=") else None
        except (ValueError, SyntaxError):
            units = None
        if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
            raise ValueError(
                f"{path}:{number}: expected 'CUT_ID:\\tref=[...]' or 'hyp=[...]', got {line!r}"
            )
        if pending_refs and cut_id != pending_id:
            raise ValueError(
                f"{path}:{number}: cut {pending_id!r} has references but no hypothesis"
            )
        if kind == "ref=":
            pending_id = cut_id
            pending_refs.append(units)
        elif not pending_refs:
            raise ValueError(f"{path}:{number}: hypothesis of cut {cut_id!r} without a reference")
        else:
            entries.append((cut_id, pending_refs, units))
            pending_id, pending_refs = None, []
    if pending_refs:
        raise ValueError(f"{path}: cut {pending_id!r} has references but no hypothesis")
    return entries


def _alignment_line(alignment: Sequence[tuple[str, str]]) -> str:
    return " ".join(r if r == h else f"({r}->{h})" for r, h in alignment)


def format_errs(stats: ErrorRate, cut_ids: Sequence[str], title: str = "") -> str:
    """``errs`` text for one setting: summary, per-cut alignments, most common errors."""
    if len(cut_ids) != len(stats.utterances):
        raise ValueError(f"{len(cut_ids)} cut ids for {len(stats.utterances)} scored utterances")
    unit_name = "characters" if stats.name == "CER" else "words"
    out = [stats.summary()]
    if title:
        out.append(f"Test set and setting: {title}")
    out.append(
        f"Errors: {stats.insertions} insertions, {stats.deletions} deletions, "
        f"{stats.substitutions} substitutions, over {stats.ref_count} reference {unit_name} "
        f"({stats.correct} correct)"
    )
    out.append(
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, "
        "DELETIONS:, INSERTIONS:, PER-WORD STATS:"
    )
    out.append("")
    out.append("PER-UTT DETAILS: corr or (ref->hyp)")
    substitutions: Counter[tuple[str, str]] = Counter()
    deletions: Counter[str] = Counter()
    insertions: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    ref_errors: Counter[str] = Counter()
    hyp_errors: Counter[str] = Counter()
    for cut_id, utt in sorted(zip(cut_ids, stats.utterances), key=lambda item: item[0]):
        out.append(f"{cut_id}:\t{_alignment_line(utt.alignment)}")
        for r, h in utt.alignment:
            if r == h:
                correct[r] += 1
            elif r == EPS:
                insertions[h] += 1
                hyp_errors[h] += 1
            elif h == EPS:
                deletions[r] += 1
                ref_errors[r] += 1
            else:
                substitutions[(r, h)] += 1
                ref_errors[r] += 1
                hyp_errors[h] += 1

    def most_common(counter: Counter) -> list:
        return sorted(counter.items(), key=lambda item: (-item[1], item[0]))

    out.append("")
    out.append("SUBSTITUTIONS: count ref -> hyp")
    out.extend(f"{count}   {r} -> {h}" for (r, h), count in most_common(substitutions))
    out.append("")
    out.append("DELETIONS: count ref")
    out.extend(f"{count}   {r}" for r, count in most_common(deletions))
    out.append("")
    out.append("INSERTIONS: count hyp")
    out.extend(f"{count}   {h}" for h, count in most_common(insertions))
    out.append("")
    out.append("PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp")
    units = set(correct) | set(ref_errors) | set(hyp_errors)
    rows = sorted(units, key=lambda u: (-(ref_errors[u] + hyp_errors[u]), u))
    for unit in rows:
        out.append(
            f"{unit}   {correct[unit]} {ref_errors[unit] + hyp_errors[unit]} "
            f"{correct[unit] + ref_errors[unit]} {correct[unit] + hyp_errors[unit]}"
        )
    return "\n".join(out) + "\n"


def format_summary(values: Mapping[str, float], metric: str, higher_is_better: bool) -> str:
    """``settings\\t<metric>`` table, best setting first, two decimals."""
    order = sorted(
        values.items(), key=lambda item: (-item[1] if higher_is_better else item[1], item[0])
    )
    return "".join([f"settings\t{metric}\n"] + [f"{key}\t{value:.2f}\n" for key, value in order])


def save_asr_results(
    res_dir: str | os.PathLike,
    test_set: str,
    suffix: str,
    results: Mapping[str, Sequence[AsrResult]],
    lang: str,
) -> dict[str, ErrorRate]:
    """Score and write ``recogs``/``errs`` per setting and the ``wer-summary`` of a test set.

    Args:
        res_dir: directory for the files (created if missing).
        test_set: test set name, e.g. ``test_clean``.
        suffix: model part of the names, e.g. ``epoch-30_avg-9``.
        results: ``{setting: [(cut_id, ref_text, hyp_text), ...]}``.
        lang: ``zh`` (CER) or ``es``/``en`` (WER).

    Returns:
        ``{setting: ErrorRate}``.
    """
    res_dir = Path(res_dir)
    scores: dict[str, ErrorRate] = {}
    for setting, items in results.items():
        cut_ids = [cut_id for cut_id, _, _ in items]
        stats = error_rate([ref for _, ref, _ in items], [hyp for _, _, hyp in items], lang)
        scores[setting] = stats
        recogs = format_recogs(
            cut_ids, [[u.ref] for u in stats.utterances], [u.hyp for u in stats.utterances]
        )
        write_text_atomic(res_dir / result_filename("recogs", test_set, setting, suffix), recogs)
        title = "-".join(part for part in (test_set, setting) if part)
        write_text_atomic(
            res_dir / result_filename("errs", test_set, setting, suffix),
            format_errs(stats, cut_ids, title),
        )
    summary = format_summary(
        {k: v.percent for k, v in scores.items()}, rate_name(lang), higher_is_better=False
    )
    write_text_atomic(res_dir / result_filename("wer-summary", test_set, "", suffix), summary)
    return scores


def save_bleu_results(
    res_dir: str | os.PathLike,
    test_set: str,
    suffix: str,
    results: Mapping[str, Sequence[AstResult]],
    normalise: bool = True,
) -> dict[str, sacrebleu.metrics.BLEUScore]:
    """Score and write ``recogs``/``bleu`` per setting and the ``bleu-summary`` of a test set.

    ``results`` is ``{setting: [(cut_id, reference(s), hypothesis), ...]}``; a cut with
    several references gets one ``ref=`` line each in ``recogs``. BLEU is computed by
    :func:`less.metrics.bleu` (normalised, multi-reference).
    """
    res_dir = Path(res_dir)
    scores: dict[str, sacrebleu.metrics.BLEUScore] = {}
    for setting, items in results.items():
        cut_ids = [cut_id for cut_id, _, _ in items]
        refs = [[r] if isinstance(r, str) else list(r) for _, r, _ in items]
        hyps = [hyp for _, _, hyp in items]
        score = bleu(hyps, refs, normalise=normalise)
        scores[setting] = score

        def words(text: str) -> list[str]:
            return normalize(text, "en").split() if normalise else text.split()

        recogs = format_recogs(
            cut_ids, [[words(r) for r in cut_refs] for cut_refs in refs], [words(h) for h in hyps]
        )
        write_text_atomic(res_dir / result_filename("recogs", test_set, setting, suffix), recogs)
        num_refs = sorted({len(cut_refs) for cut_refs in refs})
        report = (
            f"{score}\n"
            f"segments: {len(hyps)}, references per segment: {', '.join(map(str, num_refs))}, "
            f"normalised: {normalise}\n"
        )
        write_text_atomic(res_dir / result_filename("bleu", test_set, setting, suffix), report)
    summary = format_summary({k: v.score for k, v in scores.items()}, "BLEU", higher_is_better=True)
    write_text_atomic(res_dir / result_filename("bleu-summary", test_set, "", suffix), summary)
    return scores


__all__ = [
    "format_errs",
    "format_recogs",
    "format_summary",
    "read_recogs",
    "result_filename",
    "save_asr_results",
    "save_bleu_results",
]
