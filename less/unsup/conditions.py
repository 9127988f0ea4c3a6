"""Checks of the two conditions of unsupervised ASR on a real corpus.

C2 (the LM matrix has full column rank) on text: the context matrix has one column per
label (character) and one row per context, the neighbouring units on the left and, stacked
below, on the right (``context_size`` units each side: the bigram matrix at 1). Its columns
are how each label is used. The toy model's matrix ``P_n[h, k] = p(c_{-n} = h, c_n = k)``
maps onto this one by marginalising the full context to its left and right parts, so
``rank(stacked) <= rank(P_n)``: full column rank here is sufficient for C2. Two labels
with (nearly) parallel columns — cosine similarity near 1 — are (nearly) interchangeable
in the LM: unpaired audio cannot tell which of their sounds is which (the simulation's
label permutation). Labels rarer than ``min_count`` are left out and counted: a handful of
occurrences says nothing about interchangeability but would dominate the smallest
singular value.

C1 (the audio of a label does not depend on its context, as a per-label factorisation
assumes) on audio, with an ABX test (:mod:`less.ssl.abx`) whose categories are contexts
instead of units: X and A are tokens of one character in the same context (previous and
next character), B a token of the same character in another context, all of one speaker,
and only the character's own frames are compared. An error near 50 % means the context is
not audible in the character's frames (C1 holds); the further below 50 %, the more the
realisation depends on context. Segments come from a CTC forced alignment with a trained
model (the corpus has no timing), whose boundary errors also make contexts audible: the
measure is an upper bound on the context dependence of the audio itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

BOS, EOS = "<s>", "</s>"


@dataclass
class ContextMatrix:
    labels: list[str]  # columns, most frequent first
    contexts: list[str]  # rows: "L:<left units>" then "R:<right units>"
    counts: np.ndarray  # (contexts, labels)
    label_counts: list[int]
    rare_labels: int  # labels below min_count, left out
    rare_occurrences: int


def context_matrix(
    sentences: Iterable[Sequence[str]], context_size: int = 1, min_count: int = 20
) -> ContextMatrix:
    """Counts of (context, label) over unit sequences, left and right contexts stacked."""
    if context_size < 1:
        raise ValueError(f"context_size must be at least 1, got {context_size}")
    pairs: Counter = Counter()
    label_counts: Counter = Counter()
    for units in sentences:
        padded = [BOS] * context_size + list(units) + [EOS] * context_size
        for i in range(context_size, len(padded) - context_size):
            label = padded[i]
            label_counts[label] += 1
            pairs[("L:" + " ".join(padded[i - context_size : i]), label)] += 1
            pairs[("R:" + " ".join(padded[i + 1 : i + 1 + context_size]), label)] += 1
    labels = [
        u for u, c in sorted(label_counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count
    ]
    if len(labels) < 2:
        raise ValueError(f"fewer than 2 labels occur at least {min_count} times")
    column = {u: j for j, u in enumerate(labels)}
    contexts = sorted(
        {ctx for ctx, label in pairs if label in column}, key=lambda c: (c[0] == "R", c)
    )
    row = {c: i for i, c in enumerate(contexts)}
    counts = np.zeros((len(contexts), len(labels)))
    for (ctx, label), count in pairs.items():
        if label in column:
            counts[row[ctx], column[label]] = count
    rare = [c for u, c in label_counts.items() if c < min_count]
    return ContextMatrix(
        labels, contexts, counts, [label_counts[u] for u in labels], len(rare), sum(rare)
    )


@dataclass
class C2Report:
    labels: int
    contexts: int
    rank: int
    sigma_min_joint: float  # smallest singular value of counts / total (the LM-matrix scale)
    sigma_max_joint: float
    sigma_min_unit: float  # of the matrix with unit-length columns (frequency taken out)
    condition_unit: float
    pairs: list[tuple[str, str, float]] = field(default_factory=list)  # most collinear label pairs
    groups: list[list[str]] = field(default_factory=list)  # connected groups at the threshold
    rare_labels: int = 0
    rare_occurrences: int = 0

    def lines(self, max_pairs: int = 30) -> list[str]:
        out = [
            f"C2 (LM matrix, full column rank): {self.labels} labels x {self.contexts} contexts "
            f"(left and right), rank {self.rank} of {self.labels}"
            + (" (full)" if self.rank == self.labels else " (DEFICIENT)"),
            f"  smallest singular value: {self.sigma_min_joint:.3e} (joint probabilities; largest "
            f"{self.sigma_max_joint:.3e}); with unit-length columns {self.sigma_min_unit:.4f} "
            f"(condition number {self.condition_unit:.3g})",
            f"  left out: {self.rare_labels} labels rarer than the threshold ({self.rare_occurrences} occurrences)",
            "  most collinear label pairs (cosine of context columns):",
        ]
        out += [f"    {a} {b}  {cos:.4f}" for a, b, cos in self.pairs[:max_pairs]]
        out.append(f"  near-interchangeable groups ({len(self.groups)}):")
        out += ["    " + " ".join(g) for g in self.groups]
        return out


def check_c2(matrix: ContextMatrix, threshold: float = 0.9, max_pairs: int = 50) -> C2Report:
    """Rank, smallest singular values and the label pairs whose context columns are most
    parallel (cosine >= ``threshold`` joins them into groups)."""
    counts = matrix.counts
    joint = counts / counts.sum()
    singular = np.linalg.svd(joint, compute_uv=False)
    rank = int((singular > singular[0] * max(counts.shape) * np.finfo(float).eps).sum())
    unit = counts / np.linalg.norm(counts, axis=0, keepdims=True)
    singular_unit = np.linalg.svd(unit, compute_uv=False)
    cosine = unit.T @ unit
    upper = np.triu_indices(len(matrix.labels), k=1)
    order = np.argsort(-cosine[upper], kind="stable")
    pairs = [
        (matrix.labels[upper[0][i]], matrix.labels[upper[1][i]], float(cosine[upper][i]))
        for i in order[:max_pairs]
    ]
    parent = list(range(len(matrix.labels)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(cosine >= threshold, k=1))):
        parent[find(int(i))] = find(int(j))
    members: dict[int, list[str]] = {}
    for i, label in enumerate(matrix.labels):
        members.setdefault(find(i), []).append(label)
    groups = sorted((g for g in members.values() if len(g) > 1), key=lambda g: (-len(g), g))
    return C2Report(
        labels=len(matrix.labels),
        contexts=len(matrix.contexts),
        rank=rank,
        sigma_min_joint=float(singular[-1]),
        sigma_max_joint=float(singular[0]),
        sigma_min_unit=float(singular_unit[-1]),
        condition_unit=float(singular_unit[0] / max(singular_unit[-1], 1e-300)),
        pairs=pairs,
        groups=groups,
        rare_labels=matrix.rare_labels,
        rare_occurrences=matrix.rare_occurrences,
    )


def context_items(alignments, unit_map: dict[str, str] | None = None):
    """ABX items whose category is the context (``prev_next``) and whose grouping is the
    central unit; the segment is the central unit's own span (see the module docstring)."""
    from less.ssl.abx import AbxItem

    items = []
    for utt in alignments:
        units = [(unit_map.get(u, u) if unit_map else u, s, e) for u, s, e in utt.units]
        for i in range(1, len(units) - 1):
            unit, start, end = units[i]
            items.append(
                AbxItem(
                    utt.cut_id,
                    utt.speaker,
                    f"{units[i - 1][0]}_{units[i + 1][0]}",
                    unit,
                    start,
                    end,
                )
            )
    return items


def unit_items(alignments, unit_map: dict[str, str] | None = None):
    """The same segments with the roles swapped (category: the unit, grouping: its context):
    how audible the unit itself is, the scale against which the context error is read."""
    from less.ssl.abx import AbxItem

    return [
        AbxItem(item.cut_id, item.speaker, item.context, item.unit, item.start, item.end)
        for item in context_items(alignments, unit_map)
    ]
