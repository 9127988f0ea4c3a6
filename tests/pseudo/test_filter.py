"""The LESS filter: hypo_wer arithmetic, thresholds, labels applied, report on hidden references."""

import json

import pytest
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut
from lhotse.utils import fastcopy

from less.bin import filter_pl
from less.pseudo.filter import FilterConfig, decide, filter_cuts
from tests.helpers import flags


def pl_cut(
    cut_id, teacher, llm=None, status="ok", ref=None, duration=2.0, confidence=0.9, task="asr"
):
    pl = {
        "iter": 1,
        "teacher": "t",
        "hyp": teacher,
        "nbest": [[teacher, -1.0]],
        "confidence": confidence,
    }
    if llm is not None:
        pl["llm"] = {"model": "m", "prompt_sha": "x", "text": llm, "status": status}
    custom = {"pl": pl}
    if ref is not None:
        custom["ref_translated_text" if task == "ast" else "ref_text"] = (
            {"en": ref} if task == "ast" else ref
        )
    sup = SupervisionSegment(
        id=cut_id,
        recording_id=cut_id,
        start=0,
        duration=duration,
        text="fuente" if task == "ast" else teacher,
        custom=custom,
    )
    return fastcopy(dummy_cut(0, duration=duration), id=cut_id, supervisions=[sup])


def test_hypo_wer_threshold_on_known_pairs():
    cfg = FilterConfig(lang="zh", max_hypo_wer=0.1)
    # 1 substitution in 10 characters: 0.1, kept (<=)
    d = decide(
        pl_cut("a", "今天天气很好我们出去", "今天天气很好我们出发").supervisions[0].custom["pl"],
        2.0,
        cfg,
    )
    assert d.kept and d.hypo_wer == pytest.approx(0.1)
    # 2 of 10: 0.2, dropped
    d = decide(
        pl_cut("b", "今天天气很好我们出去", "明天天气很好我们出发").supervisions[0].custom["pl"],
        2.0,
        cfg,
    )
    assert not d.kept and d.reason == "hypo_wer" and d.hypo_wer == pytest.approx(0.2)
    # English words: 1 insertion over 4 words = 0.25
    d = decide(
        pl_cut("c", "the cat sat down", "the black cat sat down").supervisions[0].custom["pl"],
        2.0,
        FilterConfig(lang="en", max_hypo_wer=0.3),
    )
    assert d.kept and d.hypo_wer == pytest.approx(0.25)


def test_failures_confidence_and_rate_filters():
    cfg = FilterConfig(lang="zh", max_hypo_wer=0.1)
    rejected = (
        pl_cut("a", "你好", "你好", status="rejected:wrong_script").supervisions[0].custom["pl"]
    )
    assert decide(rejected, 2.0, cfg).reason.startswith("llm rejected")
    assert decide(rejected, 2.0, FilterConfig(lang="zh", keep_llm_failures=True)).kept
    low = pl_cut("b", "你好", "你好", confidence=0.2).supervisions[0].custom["pl"]
    assert decide(low, 2.0, FilterConfig(lang="zh", min_confidence=0.5)).reason == "confidence"
    fast = (
        pl_cut("c", "你好你好你好你好你好你好", "你好你好你好你好你好你好")
        .supervisions[0]
        .custom["pl"]
    )
    assert (
        decide(fast, 1.0, FilterConfig(lang="zh", max_chars_per_second=8)).reason
        == "chars per second"
    )
    empty = pl_cut("d", "", "").supervisions[0].custom["pl"]
    assert decide(empty, 1.0, cfg).reason == "empty label"
    no_source = {**pl_cut("f", "the cat", "the cat").supervisions[0].custom["pl"], "src_hyp": " "}
    assert decide(no_source, 1.0, FilterConfig(lang="en")).reason == "empty source transcript"
    with pytest.raises(ValueError, match="run llm_correct first"):
        decide(pl_cut("e", "你好").supervisions[0].custom["pl"], 1.0, cfg)


def test_labels_applied_and_report_on_hidden_references():
    cuts = [
        # teacher wrong by one char, LLM fixes it: kept with the LLM label
        pl_cut("a", "今天天气很好我们出去", "今天天气很好我们出发", ref="今天天气很好我们出发"),
        # LLM rewrote a lot: dropped
        pl_cut("b", "一二三四五六七八九十", "完全不同的句子了", ref="一二三四五六七八九十"),
        # unchanged, correct
        pl_cut("c", "我们去北京", "我们去北京", ref="我们去北京"),
    ]
    kept, annotated, report = filter_cuts(
        cuts, FilterConfig(lang="zh", max_hypo_wer=0.1), task="asr"
    )
    assert [c.id for c in kept] == ["a", "c"]
    assert kept[0].supervisions[0].text == "今天天气很好我们出发"
    assert [c.supervisions[0].custom["pl"]["kept"] for c in annotated] == [True, False, True]
    assert report.cuts_kept == 2 and report.cuts_in == 3 and report.dropped_by == {"hypo_wer": 1}
    assert report.hours_kept == pytest.approx(4.0 / 3600)
    # teacher: 1 error over 10 + 0 + 0 (25 ref chars); kept labels: perfect
    assert report.label_error["teacher label error, all cuts"] == pytest.approx(1 / 25)
    assert report.label_error["training label error, kept cuts"] == 0.0
    assert report.label_error["teacher label error, dropped cuts"] == 0.0


def test_ast_label_goes_to_the_translation(tmp_path):
    cuts = CutSet.from_cuts(
        [pl_cut("a", "the cat sat", "the cat sat down", ref="the cat sat down", task="ast")]
    )
    kept, _, _ = filter_cuts(cuts, FilterConfig(lang="en", max_hypo_wer=0.5), task="ast")
    sup = kept[0].supervisions[0]
    assert sup.custom["translated_text"]["en"] == "the cat sat down" and sup.text == "fuente"


def test_cli_noisy_student_keeps_teacher_labels(tmp_path):
    CutSet.from_cuts([pl_cut("a", "你好世界"), pl_cut("b", "再见")]).to_file(
        tmp_path / "pl.jsonl.gz"
    )
    out = tmp_path / "kept.jsonl.gz"
    filter_pl.main(
        [
            *flags(
                in_cuts=str(tmp_path / "pl.jsonl.gz"),
                out_cuts=str(out),
                task="asr",
                lang="zh",
                max_hypo_wer="-1",
                label="teacher",
            ),
        ]
    )
    assert [c.supervisions[0].text for c in CutSet.from_file(out)] == ["你好世界", "再见"]
    report = json.loads((tmp_path / "kept.report.json").read_text())
    assert report["cuts_kept"] == 2 and report["mean_hypo_wer"] is None


def test_lm_filter_drops_cuts_where_the_lm_decoding_disagrees():
    """WeNet's noisy-student LM filter: teacher 1-best vs the same audio decoded with an
    n-gram LM (pl["lm"]["text"]); the label stays the teacher's."""
    cfg = FilterConfig(lang="zh", max_hypo_wer=None, label="teacher", max_lm_cer=0.1)
    agree = pl_cut("a", "今天天气很好我们出去").supervisions[0].custom["pl"]
    agree["lm"] = {"text": "今天天气很好我们出发"}  # 1 of 10 characters
    assert decide(agree, 2.0, cfg).kept
    differ = pl_cut("b", "今天天气很好我们出去").supervisions[0].custom["pl"]
    differ["lm"] = {"text": "今天天期很好我门出发"}  # 3 of 10
    assert decide(differ, 2.0, cfg).reason == "lm_cer"
    assert decide(
        differ, 2.0, FilterConfig(lang="zh", max_hypo_wer=None, label="teacher")
    ).kept  # off
    with pytest.raises(ValueError, match="pseudo_label --lm"):
        decide(pl_cut("c", "你好").supervisions[0].custom["pl"], 1.0, cfg)


def test_the_record_may_sit_on_any_supervision():
    # a cut whose first supervision is another annotation: the filter reads, labels and keeps
    # the supervision that carries the record
    cut = pl_cut("c", "今天天气很好", "今天天气很好", ref="今天天气很好")
    other = fastcopy(cut.supervisions[0], id="c-note", text="别的", custom={"note": 1})
    cut = fastcopy(cut, supervisions=[other, cut.supervisions[0]])
    kept, annotated, report = filter_cuts([cut], FilterConfig(lang="zh"), "asr")
    (sup,) = kept[0].supervisions
    assert sup.id == "c" and sup.text == "今天天气很好" and sup.custom["pl"]["kept"] is True
    assert annotated[0].supervisions[0].custom == {"note": 1}
    assert report.cuts_kept == 1
