"""less.bin.subset_cuts: equal-hours subsets by whole recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import flags


def _cuts(tmp_path: Path) -> Path:
    from lhotse import AudioSource, CutSet, MonoCut, Recording

    cuts = []
    for r in range(10):
        recording = Recording(
            id=f"rec{r}",
            sources=[AudioSource("file", [0], "x.wav")],
            sampling_rate=16000,
            num_samples=16000 * 60,
            duration=60.0,
        )
        for s in range(3):  # three 10-s segments per recording
            cuts.append(
                MonoCut(
                    id=f"rec{r}-{s}", start=10.0 * s, duration=10.0, channel=0, recording=recording
                )
            )
    path = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path


def test_subset_takes_whole_recordings_up_to_the_hours(tmp_path: Path):
    from lhotse import CutSet

    from less.bin.subset_cuts import main

    src = _cuts(tmp_path)  # 10 recordings x 30 s = 300 s
    main(
        [
            *flags(
                in_cuts=str(src),
                hours=str(100 / 3600),
                seed="1",
                out_cuts=str(tmp_path / "a.jsonl.gz"),
            ),
        ]
    )
    kept = CutSet.from_file(tmp_path / "a.jsonl.gz").to_eager()
    recordings = {c.recording_id for c in kept}
    assert len(kept) == 3 * len(recordings)  # never part of a recording
    assert 100 <= sum(c.duration for c in kept) < 130  # overshoots by less than one recording
    main(
        [
            *flags(
                in_cuts=str(src), fraction="0.5", seed="1", out_cuts=str(tmp_path / "b.jsonl.gz")
            ),
        ]
    )
    half = CutSet.from_file(tmp_path / "b.jsonl.gz").to_eager()
    assert sum(c.duration for c in half) == 150
    main(
        [
            *flags(
                in_cuts=str(src), fraction="0.5", seed="2", out_cuts=str(tmp_path / "c.jsonl.gz")
            ),
        ]
    )
    other = CutSet.from_file(tmp_path / "c.jsonl.gz").to_eager()
    assert {c.recording_id for c in other} != {c.recording_id for c in half}  # the seed chooses


def test_subset_refuses_more_hours_than_there_are(tmp_path: Path):
    from less.bin.subset_cuts import main

    with pytest.raises(SystemExit, match="fewer than"):
        main(
            [
                *flags(
                    in_cuts=str(_cuts(tmp_path)), hours="1", out_cuts=str(tmp_path / "x.jsonl.gz")
                ),
            ]
        )


def test_fraction_of_another_cut_set(tmp_path: Path):
    from lhotse import CutSet

    from less.bin.subset_cuts import main

    src = _cuts(tmp_path)  # 300 s
    small = tmp_path / "small.jsonl.gz"
    CutSet.from_file(src).subset(first=12).to_file(small)  # 120 s
    main(
        [
            *flags(
                in_cuts=str(src),
                fraction="0.5",
                fraction_of=str(small),
                out_cuts=str(tmp_path / "d.jsonl.gz"),
            ),
        ]
    )
    kept = CutSet.from_file(tmp_path / "d.jsonl.gz").to_eager()
    assert 60 <= sum(c.duration for c in kept) < 90  # half of 120 s, by whole 30-s recordings
