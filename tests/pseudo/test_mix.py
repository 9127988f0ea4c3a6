"""less.pseudo.mix: pseudo-labelled hours per supervised hour, supervised repetition, origin tags."""

import pytest
from lhotse import CutSet
from lhotse.testing.dummies import dummy_cut

from less.bin import mix as mix_cli
from less.pseudo.mix import mix_cuts
from tests.helpers import flags


def cuts(prefix: str, n: int, duration: float) -> CutSet:
    return CutSet.from_cuts(
        dummy_cut(i, duration=duration).with_id(f"{prefix}-{i}") for i in range(n)
    )


def test_all_kept_cuts_by_default():
    mixed, stats = mix_cuts(cuts("s", 4, 10.0), cuts("p", 6, 5.0))
    assert len(mixed) == 10
    assert stats.sup_hours == pytest.approx(40 / 3600) and stats.pl_hours == pytest.approx(
        30 / 3600
    )
    assert sorted(c.custom["origin"] for c in mixed) == ["pl"] * 6 + ["sup"] * 4


def test_ratio_subsamples_pseudo_labelled_hours():
    mixed, stats = mix_cuts(cuts("s", 4, 10.0), cuts("p", 40, 2.0), pl_ratio=0.5, seed=3)
    pl = [c for c in mixed if c.custom["origin"] == "pl"]
    assert sum(c.duration for c in pl) == pytest.approx(20.0)  # 0.5 x 40 s
    again, _ = mix_cuts(cuts("s", 4, 10.0), cuts("p", 40, 2.0), pl_ratio=0.5, seed=3)
    assert [c.id for c in again] == [c.id for c in mixed]
    other, _ = mix_cuts(cuts("s", 4, 10.0), cuts("p", 40, 2.0), pl_ratio=0.5, seed=4)
    assert {c.id for c in other} != {c.id for c in mixed}


def test_ratio_beyond_available_uses_all_and_repeat_supervised():
    mixed, stats = mix_cuts(cuts("s", 2, 10.0), cuts("p", 3, 1.0), pl_ratio=10.0, sup_repeat=3)
    assert stats.pl_cuts == 3 and stats.sup_cuts == 6
    ids = [c.id for c in mixed]
    assert len(ids) == len(set(ids)) == 9 and "s-0_rep2" in ids


def test_id_clash_and_bad_arguments():
    with pytest.raises(ValueError, match="also in the supervised set"):
        mix_cuts(cuts("x", 2, 1.0), cuts("x", 2, 1.0))
    with pytest.raises(ValueError):
        mix_cuts(cuts("s", 2, 1.0), cuts("p", 2, 1.0), sup_repeat=0)


def test_cli_writes_cuts_and_stats(tmp_path):
    cuts("s", 3, 4.0).to_file(tmp_path / "sup.jsonl.gz")
    cuts("p", 5, 2.0).to_file(tmp_path / "pl.jsonl.gz")
    out = tmp_path / "mix.jsonl.gz"
    mix_cli.main(
        [
            *flags(
                sup_cuts=str(tmp_path / "sup.jsonl.gz"),
                pl_cuts=str(tmp_path / "pl.jsonl.gz"),
                out_cuts=str(out),
                pl_ratio="0.5",
            ),
        ]
    )
    assert len(CutSet.from_file(out)) == 3 + 3  # 6 s of 2 s cuts
    assert (tmp_path / "mix.stats.json").is_file()


def test_nothing_kept_gives_the_supervised_set(tmp_path):
    cuts("s", 3, 4.0).to_file(tmp_path / "sup.jsonl.gz")
    CutSet().to_file(tmp_path / "pl.jsonl.gz")  # every cut dropped by the filter
    out = tmp_path / "mix.jsonl.gz"
    mix_cli.main(
        [
            *flags(
                sup_cuts=str(tmp_path / "sup.jsonl.gz"),
                pl_cuts=str(tmp_path / "pl.jsonl.gz"),
                out_cuts=str(out),
            ),
        ]
    )
    assert [c.custom["origin"] for c in CutSet.from_file(out)] == ["sup"] * 3
