"""ABX scoring, DTW and CTC forced alignment (less.ssl.abx, less.ssl.alignment, less.bin.abx)."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest
import torch

from less.ssl.abx import AbxItem, _dtw_batch, abx_error, make_items, pairwise_dtw
from less.ssl.alignment import (
    UtteranceAlignment,
    ctc_forced_align,
    frame_times,
    load_alignments,
    save_alignments,
    spans_to_segments,
    token_spans,
)
from tests.helpers import flags


def reference_dtw(dist: list[list[float]]) -> float:
    """libri-light's _dtw (cumulative cost, greedy backtrace for the path length), in plain Python."""
    n, m = len(dist), len(dist[0])
    cost = [[0.0] * m for _ in range(n)]
    cost[0][0] = dist[0][0]
    for i in range(1, n):
        cost[i][0] = dist[i][0] + cost[i - 1][0]
    for j in range(1, m):
        cost[0][j] = dist[0][j] + cost[0][j - 1]
    for i in range(1, n):
        for j in range(1, m):
            cost[i][j] = dist[i][j] + min(cost[i - 1][j], cost[i - 1][j - 1], cost[i][j - 1])
    path_len, i, j = 1, n - 1, m - 1
    while i > 0 and j > 0:
        up, left, diag = cost[i - 1][j], cost[i][j - 1], cost[i - 1][j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        path_len += 1
    path_len += i + j
    return cost[n - 1][m - 1] / path_len


def test_dtw_matches_libri_light_definition():
    rng = torch.Generator().manual_seed(0)
    shapes = [(1, 1), (1, 5), (4, 1), (3, 7), (9, 4), (6, 6)]
    n_max, m_max = 9, 7
    dist = torch.rand(len(shapes), n_max, m_max, generator=rng, dtype=torch.float64)
    dist[-1] = (dist[-1] * 4).round() / 4  # ties exercise the tie-breaking order
    got = _dtw_batch(
        dist, torch.tensor([s[0] for s in shapes]), torch.tensor([s[1] for s in shapes])
    )
    for k, (n, m) in enumerate(shapes):
        assert float(got[k]) == pytest.approx(reference_dtw(dist[k, :n, :m].tolist()), abs=1e-12), (
            n,
            m,
        )


def test_pairwise_dtw_is_zero_on_identical_sequences_and_symmetric():
    a = torch.randn(5, 3)
    b = torch.randn(7, 3)
    d = pairwise_dtw([a, b, a.clone()])
    assert d[0, 2] == pytest.approx(0.0, abs=1e-3)  # arccos near 1 in float32
    assert torch.equal(d, d.T) and 0 < float(d[0, 1]) <= 1.0


def synthetic_items(shuffle: bool, seed: int = 0):
    """Units with well-separated mean directions; 3 speakers, 4 contexts, 5 tokens each."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dim, units = 16, ["a", "b", "c", "d"]
    centres = {u: torch.randn(dim, generator=gen) * 3 for u in units}
    speaker_shift = {s: torch.randn(dim, generator=gen) * 0.3 for s in ("s1", "s2", "s3")}
    items, feats = [], []
    for context in ("x_y", "y_z", "z_x", "x_x"):
        for speaker, shift in speaker_shift.items():
            for unit in units:
                for k in range(5):
                    frames = (
                        centres[unit]
                        + shift
                        + 0.3 * torch.randn(rng.randint(3, 8), dim, generator=gen)
                    )
                    items.append(
                        AbxItem(f"{speaker}-{context}-{unit}-{k}", speaker, unit, context, 0.0, 1.0)
                    )
                    feats.append(frames)
    if shuffle:
        labels = [it.unit for it in items]
        rng.shuffle(labels)
        items = [
            AbxItem(it.cut_id, it.speaker, lab, it.context, it.start, it.end)
            for it, lab in zip(items, labels)
        ]
    return items, feats


def test_abx_is_near_zero_on_separable_units_and_near_half_when_shuffled():
    items, feats = synthetic_items(shuffle=False)
    clean = abx_error(items, feats)
    assert clean.within < 0.01 and clean.across < 0.01
    assert clean.within_pairs == clean.across_pairs == 12  # ordered pairs of 4 units
    errors = [abx_error(*synthetic_items(shuffle=True, seed=s)) for s in range(3)]
    within = sum(r.within for r in errors) / len(errors)
    across = sum(r.across for r in errors) / len(errors)
    assert 0.4 < within < 0.6 and 0.4 < across < 0.6


def test_abx_items_are_triphones_sharing_context():
    utt = UtteranceAlignment(
        "u1", "spk", 1.0, [("一", 0.0, 0.2), ("二", 0.2, 0.5), ("三", 0.5, 0.7), ("四", 0.7, 1.0)]
    )
    items = make_items([utt], "triphone")
    assert [(i.unit, i.context, i.start, i.end) for i in items] == [
        ("二", "一_三", 0.0, 0.7),
        ("三", "二_四", 0.2, 1.0),
    ]
    assert len(make_items([utt], "any")) == 4
    assert make_items([utt], "triphone", {"二": "er"})[0].unit == "er"


def brute_force_best_path(log_probs: torch.Tensor, tokens: list[int], blank: int = 0):
    """Highest-scoring frame labelling that collapses to ``tokens`` (exhaustive)."""
    num_frames, vocab = log_probs.shape
    best, best_path = -math.inf, None
    for labels in itertools.product(range(vocab), repeat=num_frames):
        collapsed = [
            k for i, k in enumerate(labels) if k != blank and (i == 0 or labels[i - 1] != k)
        ]
        if collapsed != tokens:
            continue
        score = sum(float(log_probs[t, k]) for t, k in enumerate(labels))
        if score > best:
            best, best_path = score, labels
    return best_path


def test_ctc_forced_alignment_is_the_best_path():
    gen = torch.Generator().manual_seed(3)
    for tokens in ([1, 2], [1, 1], [2, 1, 2]):
        log_probs = torch.randn(6, 3, generator=gen).log_softmax(-1)
        path = ctc_forced_align(log_probs, tokens)
        labels = brute_force_best_path(log_probs, tokens)
        assert path is not None
        # token index per frame -> token id per frame (blank 0) must give the optimal labelling
        assert [0 if k < 0 else tokens[k] for k in path] == list(labels)
    assert (
        ctc_forced_align(torch.zeros(2, 3), [1, 1]) is None
    )  # repeated tokens need a blank between


def test_forced_alignment_finds_planted_spikes_and_segments():
    frames, tokens = 40, [3, 4, 4, 5]
    log_probs = torch.full((frames, 6), -8.0)
    log_probs[:, 0] = -0.01
    for frame, token in zip([5, 14, 17, 30], tokens):
        log_probs[frame, token] = -0.01
        log_probs[frame, 0] = -8.0
    path = ctc_forced_align(log_probs, tokens)
    assert token_spans(path, 4) == [(5, 5), (14, 14), (17, 17), (30, 30)]
    segments = spans_to_segments(token_spans(path, 4), duration=2.0)
    times = frame_times(31, "25")
    assert segments[1][0] == pytest.approx(float(times[5] + times[14]) / 2)
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    assert segments[0][0] >= 0 and segments[-1][1] <= 2.0


def test_abx_cli_on_the_tiny_corpus(mini_data: Path, tmp_path: Path):
    """fbank and encoder layers of a saved SSL checkpoint, from a given alignment file."""
    from lhotse import CutSet

    from less.bin import abx as abx_cli
    from less.checkpoint import save_checkpoint
    from less.ssl.model import SslModel, SslObjectiveConfig

    torch.set_num_threads(1)
    cuts_path = mini_data / "fbank" / "mini-asr_cuts_test_clean.jsonl.gz"
    alignments = []
    for i, cut in enumerate(CutSet.from_file(cuts_path)):
        text = cut.supervisions[0].text
        step = cut.duration / len(text)
        # two "speakers" of two utterances each, so that both within and across have pairs
        alignments.append(
            UtteranceAlignment(
                cut.id,
                f"spk{i % 2}",
                cut.duration,
                [(ch, i * step, (i + 1) * step) for i, ch in enumerate(text)],
            )
        )
    save_alignments(tmp_path / "align.jsonl", alignments)
    assert load_alignments(tmp_path / "align.jsonl")[0].units[0][0] == alignments[0].units[0][0]
    model = SslModel(SslObjectiveConfig(codebook_size=64), "xs")
    save_checkpoint(
        tmp_path / "ssl.pt", model=model.state_dict(), config={"model": "xs", "model_overrides": {}}
    )
    out = tmp_path / "abx.json"
    abx_cli.main(
        [
            *flags(
                cuts=str(cuts_path),
                alignments=str(tmp_path / "align.jsonl"),
                checkpoint=str(tmp_path / "ssl.pt"),
                layer=["fbank", "2", "final"],
                context="any",
                max_group_size="3",
                out=str(out),
            ),
        ]
    )
    result = json.loads(out.read_text())
    assert set(result["layers"]) == {"fbank", "2", "final"}
    for layer in result["layers"].values():
        assert 0.0 <= layer["within"] <= 1.0 and 0.0 <= layer["across"] <= 1.0
        assert layer["within_pairs"] > 0 and layer["items"] > 0
    with pytest.raises(SystemExit, match="align-checkpoint"):
        abx_cli.main(
            [
                *flags(
                    cuts=str(cuts_path),
                    alignments=str(tmp_path / "missing.jsonl"),
                    layer="fbank",
                    out=str(out),
                ),
            ]
        )
