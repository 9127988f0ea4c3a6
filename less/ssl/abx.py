"""ABX phonetic discrimination of frame representations (libri-light / ZeroSpeech style).

An ABX triplet asks whether X, a token of unit ``a``, is closer to another token A of
``a`` than to a token B of unit ``b``; the error is ``P(d(A, X) > d(B, X)) + 0.5 P(=)``.
Following libri-light's ``eval_ABX`` (``ABX_src/abx_group_computation.py``,
``abx_iterators.py``):

* items are triphones: the central unit with the previous and next unit as context; the
  segment spans all three units, and A, B, X always share the context;
* within-speaker: A, B, X from one speaker (X != A); across-speaker: A and B from one
  speaker, X from another;
* distance: DTW over the frame-wise angular distance ``arccos(cos) / pi`` of L2-normalised
  frames, divided by the length of the best path (ties broken diagonal, then the B/A
  axis, then the X axis, as libri-light's backtrace);
* at most ``max_group_size`` tokens per (context, speaker, unit) group, sampled with a
  fixed seed;
* the error is averaged over contexts (and X speakers, across), then over speakers, then
  over ordered unit pairs ``(a, b)``.

``context="any"`` drops the context (items are single units): more triplets from little
data, but the cost grows with the square of the tokens per speaker.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from less.ssl.alignment import UtteranceAlignment

CONTEXT_MODES = ("triphone", "any")


@dataclass(frozen=True)
class AbxItem:
    cut_id: str
    speaker: str
    unit: str
    context: str
    start: float
    end: float


def make_items(
    alignments: Sequence[UtteranceAlignment],
    context: str = "triphone",
    unit_map: dict[str, str] | None = None,
) -> list[AbxItem]:
    """ABX items of aligned utterances; ``unit_map`` renames units (e.g. character ->
    syllable, so that homophones form one category)."""
    if context not in CONTEXT_MODES:
        raise ValueError(f"unknown context mode {context!r}; choose from {CONTEXT_MODES}")
    items = []
    for utt in alignments:
        units = [(unit_map.get(u, u) if unit_map else u, s, e) for u, s, e in utt.units]
        for i, (unit, start, end) in enumerate(units):
            if context == "any":
                items.append(AbxItem(utt.cut_id, utt.speaker, unit, "", start, end))
            elif 0 < i < len(units) - 1:
                items.append(
                    AbxItem(
                        utt.cut_id,
                        utt.speaker,
                        unit,
                        f"{units[i - 1][0]}_{units[i + 1][0]}",
                        units[i - 1][1],
                        units[i + 1][2],
                    )
                )
    return items


def segment(frames: Tensor, times: Tensor, start: float, end: float) -> Tensor | None:
    """Frames whose centre lies in [start, end), or None."""
    keep = (times >= start) & (times < end)
    return frames[keep] if bool(keep.any()) else None


def _dtw_batch(dist: Tensor, len_x: Tensor, len_y: Tensor) -> Tensor:
    """Path-length-normalised DTW cost of each (P, N, M) distance matrix, up to its lengths."""
    num, n_max, m_max = dist.shape
    cost = torch.full((num, n_max + 1, m_max + 1), float("inf"), dtype=dist.dtype)
    length = torch.zeros((num, n_max + 1, m_max + 1), dtype=dist.dtype)
    cost[:, 0, 0] = 0.0
    for k in range(2, n_max + m_max + 1):
        i = torch.arange(max(1, k - m_max), min(n_max, k - 1) + 1)
        j = k - i
        diag, left, up = cost[:, i - 1, j - 1], cost[:, i, j - 1], cost[:, i - 1, j]
        use_diag = (diag <= left) & (diag <= up)
        use_left = ~use_diag & (left <= up)
        cost[:, i, j] = dist[:, i - 1, j - 1] + torch.where(
            use_diag, diag, torch.where(use_left, left, up)
        )
        length[:, i, j] = 1 + torch.where(
            use_diag,
            length[:, i - 1, j - 1],
            torch.where(use_left, length[:, i, j - 1], length[:, i - 1, j]),
        )
    index = torch.arange(num)
    return cost[index, len_x, len_y] / length[index, len_x, len_y]


def pairwise_dtw(seqs: Sequence[Tensor], chunk: int = 2048) -> Tensor:
    """Symmetric (N, N) matrix of DTW distances between sequences of frames (T_i, D)."""
    count = len(seqs)
    out = torch.zeros(count, count, dtype=torch.float32)
    if count < 2:
        return out
    lengths = torch.tensor([s.shape[0] for s in seqs])
    padded = torch.zeros(count, int(lengths.max()), seqs[0].shape[1])
    for n, s in enumerate(seqs):
        padded[n, : s.shape[0]] = torch.nn.functional.normalize(s.float(), dim=-1)
    rows, cols = torch.triu_indices(count, count, offset=1)
    for begin in range(0, rows.numel(), chunk):
        r, c = rows[begin : begin + chunk], cols[begin : begin + chunk]
        n_max, m_max = int(lengths[r].max()), int(lengths[c].max())
        cos = torch.bmm(padded[r, :n_max], padded[c, :m_max].transpose(1, 2))
        dist = cos.clamp(-1.0, 1.0).acos() / torch.pi
        values = _dtw_batch(dist, lengths[r], lengths[c])
        out[r, c] = values
        out[c, r] = values
    return out


@dataclass
class AbxResult:
    within: float
    across: float
    within_pairs: int  # ordered unit pairs with a score
    across_pairs: int
    within_cells: int  # (context, speaker, a, b) combinations scored
    across_cells: int
    items: int
    contexts: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _mean_nested(scores: dict[tuple, list[float]]) -> dict[tuple, float]:
    return {k: sum(v) / len(v) for k, v in scores.items()}


def _aggregate(cell_errors: dict[tuple[str, str, str], list[float]]) -> tuple[float, int]:
    """``{(speaker, a, b): [error per context...]}`` -> mean over contexts, then speakers,
    then unit pairs; and the number of unit pairs."""
    per_speaker = _mean_nested(cell_errors)
    per_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (_, a, b), error in per_speaker.items():
        per_pair[(a, b)].append(error)
    pair_means = _mean_nested(per_pair)
    if not pair_means:
        return float("nan"), 0
    return sum(pair_means.values()) / len(pair_means), len(pair_means)


def _score(d_xa: Tensor, d_xb: Tensor, exclude_diagonal: bool) -> float:
    """Error of X rows against A columns (d_xa: (Nx, Na)) and B columns (d_xb: (Nx, Nb))."""
    closer_a = (d_xa[:, :, None] < d_xb[:, None, :]).double()
    ties = (d_xa[:, :, None] == d_xb[:, None, :]).double()
    score = closer_a + 0.5 * ties
    if exclude_diagonal:
        keep = ~torch.eye(d_xa.shape[0], dtype=torch.bool)
        score = score[keep]
    return 1.0 - float(score.mean())


def abx_error(
    items: Sequence[AbxItem],
    features: Sequence[Tensor | None],
    max_group_size: int = 10,
    seed: int = 0,
) -> AbxResult:
    """Within- and across-speaker ABX error of ``items`` given each item's frames
    (None: the item is skipped, e.g. no frame inside its segment)."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(
        list
    )  # (context, speaker, unit) -> items
    for n, (item, feats) in enumerate(zip(items, features)):
        if feats is not None and feats.shape[0] > 0:
            groups[(item.context, item.speaker, item.unit)].append(n)
    for key, members in groups.items():
        if len(members) > max_group_size:
            groups[key] = sorted(rng.sample(members, max_group_size))
    by_context: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(dict))
    for (context, speaker, unit), members in sorted(groups.items()):
        by_context[context][speaker][unit] = members

    within: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    across: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    used_items = 0
    for speakers in by_context.values():
        units_anywhere = {u for per_unit in speakers.values() for u in per_unit}
        if len(units_anywhere) < 2:
            continue
        members = sorted(
            {n for per_unit in speakers.values() for m in per_unit.values() for n in m}
        )
        position = {n: i for i, n in enumerate(members)}
        dist = pairwise_dtw([features[n] for n in members])
        used_items += len(members)

        def block(rows: list[int], cols: list[int], dist=dist, position=position) -> Tensor:
            return dist[[position[r] for r in rows]][:, [position[c] for c in cols]]

        for speaker, per_unit in speakers.items():
            for a, group_a in per_unit.items():
                for b, group_b in per_unit.items():
                    if a == b:
                        continue
                    if len(group_a) >= 2:
                        within[(speaker, a, b)].append(
                            _score(
                                block(group_a, group_a),
                                block(group_a, group_b),
                                exclude_diagonal=True,
                            )
                        )
                    for other, other_units in speakers.items():
                        if other != speaker and a in other_units:
                            group_x = other_units[a]
                            across[(speaker, a, b)].append(
                                _score(
                                    block(group_x, group_a),
                                    block(group_x, group_b),
                                    exclude_diagonal=False,
                                )
                            )
    within_error, within_pairs = _aggregate(within)
    across_error, across_pairs = _aggregate(across)
    return AbxResult(
        within_error,
        across_error,
        within_pairs,
        across_pairs,
        sum(len(v) for v in within.values()),
        sum(len(v) for v in across.values()),
        used_items,
        len(by_context),
    )
