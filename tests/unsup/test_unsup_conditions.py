"""Checks of C1 and C2 (less.unsup.conditions, less.bin.check_unsup_conditions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from less.unsup.conditions import check_c2, context_items, context_matrix, unit_items
from tests.helpers import flags


def planted_text(seed: int = 0, count: int = 3000, plant: bool = True) -> list[list[str]]:
    """Sentences from a random first-order chain in which every character has contexts of
    its own, except that (``plant``) wherever 甲 would be written, 乙 is written half of
    the time, followed as 甲 would be: 甲 and 乙 are interchangeable."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chars = list("甲天地人日月山水火木金土石田")
    trans = rng.dirichlet(0.3 * np.ones(len(chars)), size=len(chars))
    start = rng.dirichlet(np.ones(len(chars)))
    out = []
    for _ in range(count):
        state = int(rng.choice(len(chars), p=start))
        sentence = []
        for _ in range(int(rng.integers(6, 11))):
            sentence.append(
                "乙" if plant and chars[state] == "甲" and rng.random() < 0.5 else chars[state]
            )
            state = int(rng.choice(len(chars), p=trans[state]))
        out.append(sentence)
    return out


def test_the_planted_interchangeable_pair_is_flagged():
    report = check_c2(context_matrix(planted_text(), context_size=1, min_count=5), threshold=0.95)
    a, b, cosine = report.pairs[0]
    assert {a, b} == {"甲", "乙"} and cosine > 0.99
    assert ["乙", "甲"] in [sorted(g) for g in report.groups]
    assert report.pairs[1][2] < 0.95 and len(report.groups) == 1  # nothing else is
    assert report.sigma_min_unit < 0.1  # parallel up to sampling noise (0.32 without the plant)


def test_full_rank_without_the_plant():
    report = check_c2(context_matrix(planted_text(plant=False), min_count=5), threshold=0.95)
    assert report.rank == report.labels and report.sigma_min_unit > 0.2
    assert not report.groups


def test_context_items_swap_roles_over_the_central_span():
    from less.ssl.alignment import UtteranceAlignment

    utt = UtteranceAlignment(
        "c1", "spk", 1.0, [("a", 0.0, 0.2), ("b", 0.2, 0.5), ("c", 0.5, 0.7), ("d", 0.7, 1.0)]
    )
    items = context_items([utt])
    assert [(i.unit, i.context, i.start, i.end) for i in items] == [
        ("a_c", "b", 0.2, 0.5),
        ("b_d", "c", 0.5, 0.7),
    ]
    assert [(i.unit, i.context) for i in unit_items([utt])] == [("b", "a_c"), ("c", "b_d")]


def test_cli_checks_c2_on_text_and_c1_on_aligned_features(mini_data: Path, tmp_path: Path, capsys):
    from lhotse import CutSet

    from less.bin import check_unsup_conditions
    from less.ssl.alignment import UtteranceAlignment, save_alignments

    text = tmp_path / "text.txt"
    text.write_text("\n".join("".join(s) for s in planted_text()) + "\n", encoding="utf-8")
    cuts_path = mini_data / "fbank" / "mini-asr_cuts_train_sup.jsonl.gz"
    # an even split of each transcript over its duration stands in for a forced alignment
    alignments = []
    for cut in CutSet.from_file(cuts_path):
        chars = list(cut.supervisions[0].text)
        step = cut.duration / len(chars)
        alignments.append(
            UtteranceAlignment(
                cut.id,
                cut.supervisions[0].speaker,
                cut.duration,
                [(ch, i * step, (i + 1) * step) for i, ch in enumerate(chars)],
            )
        )
    save_alignments(tmp_path / "align_train_sup.jsonl", alignments)
    out = tmp_path / "report.json"
    check_unsup_conditions.main(
        [
            *flags(
                lang="zh",
                text=str(text),
                min_count="5",
                threshold="0.95",
                cuts=f"train_sup={cuts_path}",
                alignments_dir=str(tmp_path),
                out=str(out),
            ),
        ]
    )
    printed = capsys.readouterr().out
    assert "甲 乙" in printed or "乙 甲" in printed
    report = json.loads(out.read_text())
    c1 = report["c1"]["train_sup"]
    assert 0.0 <= c1["context"]["within"] <= 1.0 and c1["context"]["within_pairs"] > 0
    assert c1["unit"]["within_pairs"] == 0 or 0.0 <= c1["unit"]["within"] <= 1.0
    assert report["c2"]["groups"] == [["甲", "乙"]] or report["c2"]["groups"] == [["乙", "甲"]]
    with pytest.raises(SystemExit, match="align-checkpoint"):
        check_unsup_conditions.main(
            ["--cuts", f"test_wild={cuts_path}", "--alignments-dir", str(tmp_path / "none")]
        )
