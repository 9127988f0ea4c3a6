"""The pseudo-label record (custom["pl"]): typed, validated, round-tripped with unknown keys kept."""

import pytest
from lhotse import SupervisionSegment
from lhotse.testing.dummies import dummy_cut
from lhotse.utils import fastcopy

from less.pseudo.record import PseudoLabelRecord, read_record, with_record


def test_round_trip_keeps_unknown_keys_and_leaves_out_unset_fields():
    pl = {
        "iter": 2,
        "teacher": "exp/asr/iter0 epoch-30_avg-5",
        "hyp": "你好",
        "nbest": [["你好", -1.5], ["你号", -2]],
        "confidence": 0.8,
        "llm": {"model": "m", "text": "您好", "status": "ok"},
        "future_key": [1, 2],
    }
    record = PseudoLabelRecord.from_custom(pl)
    assert record.nbest == [("你好", -1.5), ("你号", -2.0)] and record.llm_text == "您好"
    assert record.extra == {"future_key": [1, 2]} and record.src_hyp is None
    assert record.to_custom() == {**pl, "nbest": [["你好", -1.5], ["你号", -2.0]]}
    record.kept, record.hypo_wer = True, 0.5
    assert record.to_custom()["kept"] is True and "drop_reason" not in record.to_custom()


def test_errors_name_the_cut_and_with_record_writes_a_copy():
    sup = SupervisionSegment(
        id="s",
        recording_id="r",
        start=0,
        duration=1,
        text="x",
        custom={"pl": {"iter": 1, "teacher": "t", "hyp": 3}, "ref_text": "ref"},
    )
    cut = fastcopy(dummy_cut(0, duration=1.0), id="cut-7", supervisions=[sup])
    with pytest.raises(ValueError, match=r"cut cut-7: custom\['pl'\]\['hyp'\] must be a string"):
        read_record(cut)
    with pytest.raises(ValueError, match="cut cut-8: no supervision with custom"):
        read_record(fastcopy(cut, id="cut-8", supervisions=[fastcopy(sup, custom={})]))
    good = fastcopy(
        cut,
        supervisions=[
            fastcopy(sup, custom={"pl": {"iter": 1, "teacher": "t", "hyp": "a"}, "ref_text": "ref"})
        ],
    )
    record = read_record(good)
    record.llm = {"text": "b", "status": "ok"}
    updated = with_record(good, record)
    assert (
        read_record(updated).llm_text == "b" and updated.supervisions[0].custom["ref_text"] == "ref"
    )
    assert "llm" not in good.supervisions[0].custom["pl"]  # the input cut is unchanged
    with pytest.raises(ValueError, match="entries must be"):
        PseudoLabelRecord.from_custom({"hyp": "a", "nbest": [["a"]]}, "cut z")
