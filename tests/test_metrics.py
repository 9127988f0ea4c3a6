"""WER/CER, BLEU and hypo-WER on known pairs; icefall-style result files."""

from __future__ import annotations

import pytest
import sacrebleu

from less.data.text import normalize
from less.decode.results import result_filename, save_asr_results, save_bleu_results
from less.metrics import align_units, bleu, error_rate, hypo_wer

# ---------------------------------------------------------------- error rates


def test_error_rate_counts_each_error_type():
    refs = ["a b c d", "e f g", "h i"]
    hyps = ["a x c d y", "e g", "h i"]  # 1 sub + 1 ins, 1 del, none
    stats = error_rate(refs, hyps, "en")
    assert (stats.substitutions, stats.insertions, stats.deletions) == (1, 1, 1)
    assert stats.errors == 3 and stats.ref_count == 9
    assert stats.rate == pytest.approx(3 / 9)
    assert stats.name == "WER"
    assert stats.correct == 7
    assert stats.summary() == "%WER 33.33 [ 3 / 9, 1 ins, 1 del, 1 sub ]"
    assert stats.utterances[0].alignment == [
        ("a", "a"),
        ("b", "x"),
        ("c", "c"),
        ("d", "d"),
        ("*", "y"),
    ]
    assert stats.utterances[1].alignment == [("e", "e"), ("f", "*"), ("g", "g")]


def test_error_rate_is_corpus_level_not_an_average():
    stats = error_rate(["a", "a b c d e f g h i j"], ["b", "a b c d e f g h i j"], "en")
    assert stats.rate == pytest.approx(1 / 11)  # the mean of per-utterance rates would be 0.5


def test_cer_for_mandarin_counts_characters_after_normalisation():
    stats = error_rate(["今天天气很好。", "我有35本书"], ["今天天汽很好", "我有三十五本"], "zh")
    assert stats.name == "CER"
    assert stats.ref_count == 6 + 7  # 我有三十五本书: digits spelled out
    assert (stats.substitutions, stats.deletions, stats.insertions) == (1, 1, 0)
    assert stats.summary() == "%CER 15.38 [ 2 / 13, 0 ins, 1 del, 1 sub ]"


def test_wer_for_spanish_ignores_case_punctuation_and_digit_format():
    stats = error_rate(
        ["Hola, ¿cómo estás? Tengo 25 años."], ["hola cómo estás tengo veinticinco años"], "es"
    )
    assert stats.errors == 0 and stats.ref_count == 6
    stats = error_rate(["¿Cómo estás?"], ["como estas"], "es")  # accents are not formatting
    assert stats.substitutions == 2


def test_error_rate_edge_cases():
    stats = error_rate(["", "a b"], ["x", ""], "en")
    assert (stats.insertions, stats.deletions, stats.ref_count) == (1, 2, 2)
    assert error_rate([], [], "en").rate == 0.0
    assert error_rate([""], ["x y"], "en").rate == 2.0  # errors / max(ref_count, 1)
    with pytest.raises(ValueError):
        error_rate(["a"], [], "en")
    assert align_units([], []).errors == 0


# ---------------------------------------------------------------- hypo-WER


def test_hypo_wer_arithmetic():
    assert hypo_wer("今天天气很好", "今天天气真好", "zh") == pytest.approx(1 / 6)
    assert hypo_wer("the cat sat", "the cat sat down", "en") == pytest.approx(1 / 3)
    assert hypo_wer("the cat sat on the mat", "a cat sat on mat", "en") == pytest.approx(2 / 6)
    assert hypo_wer("Hello, World!", "hello world", "en") == 0.0
    assert hypo_wer("uno dos tres", "1 2 3", "es") == 0.0


def test_hypo_wer_empty_texts():
    assert hypo_wer("", "", "zh") == 0.0
    assert hypo_wer("。", "", "zh") == 0.0  # empty after normalisation
    assert hypo_wer("", "hello world", "en") == 2.0  # units the LLM invented
    assert hypo_wer("", "好", "zh") == 1.0
    assert hypo_wer("a b", "", "en") == 1.0


# ---------------------------------------------------------------- BLEU


def test_bleu_perfect_and_matches_sacrebleu():
    hyps = ["The cat sat on the mat.", "It is raining today"]
    refs = [["the cat sat on the mat"], ["It's raining today!"]]
    assert bleu(hyps[:1], refs[:1]).score == pytest.approx(100.0)
    score = bleu(hyps, refs)
    direct = sacrebleu.corpus_bleu(
        [normalize(h, "en") for h in hyps], [[normalize(r[0], "en") for r in refs]]
    )
    assert score.score == pytest.approx(direct.score)
    raw = bleu(hyps[:1], refs[:1], normalise=False)
    assert raw.score < 100.0  # case and the final period count without normalisation


def test_bleu_multiple_references():
    hyps = ["i am going to the market tomorrow morning", "we will see you there"]
    first_refs = ["tomorrow i go to the store", "see you there"]
    second_refs = ["i am going to the market tomorrow morning", "we will see you over there"]
    single = bleu(hyps, [[a] for a in first_refs])
    multi = bleu(hyps, [[a, b] for a, b in zip(first_refs, second_refs)])
    assert multi.score > single.score + 20
    direct = sacrebleu.corpus_bleu(hyps, [first_refs, second_refs])
    assert multi.score == pytest.approx(direct.score)


def test_bleu_with_a_varying_number_of_references():
    hyps = ["the house is red", "yes", "good morning to you all"]
    refs = [
        [
            "the house is red",
            "the home is red",
            "it is a red house",
            "red is the house",
        ],  # Fisher: 4
        ["yes of course"],  # Callhome: 1
        "good morning everyone",  # a bare string is one reference
    ]
    score = bleu(hyps, refs)
    streams = [
        [refs[0][0], refs[1][0], refs[2]],
        [refs[0][1], None, None],
        [refs[0][2], None, None],
        [refs[0][3], None, None],
    ]
    assert score.score == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score)
    # Padding with empty strings would be wrong: an empty reference changes the brevity penalty.
    padded_empty = [[r if r is not None else "" for r in stream] for stream in streams]
    wrong = sacrebleu.corpus_bleu(hyps, padded_empty)
    assert wrong.ref_len != score.ref_len
    with pytest.raises(ValueError):
        bleu(["a"], [[]])
    with pytest.raises(ValueError):
        bleu(["a", "b"], [["a"]])


# ---------------------------------------------------------------- result files


def test_asr_result_files(tmp_path):
    results = {
        "attention_scale_0.5": [("cut-b", "e f g", "e g"), ("cut-a", "a b c d", "a x c d y")],
        "attention_scale_1.0": [("cut-b", "e f g", "e f g"), ("cut-a", "a b c d", "a b c d y")],
    }
    scores = save_asr_results(tmp_path, "test_clean", "epoch-3_avg-1", results, "es")
    assert scores["attention_scale_0.5"].errors == 3
    assert scores["attention_scale_1.0"].errors == 1

    recogs = (
        (tmp_path / "recogs-test_clean-attention_scale_0.5-epoch-3_avg-1.txt")
        .read_text()
        .splitlines()
    )
    assert recogs == [
        "cut-a:\tref=['a', 'b', 'c', 'd']",
        "cut-a:\thyp=['a', 'x', 'c', 'd', 'y']",
        "cut-b:\tref=['e', 'f', 'g']",
        "cut-b:\thyp=['e', 'g']",
    ]
    errs = (
        (tmp_path / "errs-test_clean-attention_scale_0.5-epoch-3_avg-1.txt")
        .read_text()
        .splitlines()
    )
    assert errs[0] == "%WER 42.86 [ 3 / 7, 1 ins, 1 del, 1 sub ]"
    assert "cut-a:\ta (b->x) c d (*->y)" in errs
    assert "cut-b:\te (f->*) g" in errs
    assert errs[errs.index("SUBSTITUTIONS: count ref -> hyp") + 1] == "1   b -> x"
    assert errs[errs.index("DELETIONS: count ref") + 1] == "1   f"
    assert errs[errs.index("INSERTIONS: count hyp") + 1] == "1   y"

    summary = (tmp_path / "wer-summary-test_clean-epoch-3_avg-1.txt").read_text().splitlines()
    assert summary == ["settings\tWER", "attention_scale_1.0\t14.29", "attention_scale_0.5\t42.86"]


def test_errs_file_lists_most_common_errors_first_and_uses_cer(tmp_path):
    results = {
        "ctc-greedy": [
            ("u1", "今天天气", "今天天汽"),
            ("u2", "天气很好", "天汽很好"),
            ("u3", "好人", "坏人"),
        ]
    }
    save_asr_results(tmp_path, "dev", "", results, "zh")
    assert result_filename("errs", "dev", "ctc-greedy", "") == "errs-dev-ctc-greedy.txt"
    errs = (tmp_path / "errs-dev-ctc-greedy.txt").read_text().splitlines()
    assert errs[0] == "%CER 30.00 [ 3 / 10, 0 ins, 0 del, 3 sub ]"
    start = errs.index("SUBSTITUTIONS: count ref -> hyp")
    assert errs[start + 1 : start + 3] == ["2   气 -> 汽", "1   好 -> 坏"]
    assert (tmp_path / "wer-summary-dev.txt").read_text() == "settings\tCER\nctc-greedy\t30.00\n"


def test_bleu_result_files(tmp_path):
    results = {
        "beam_4": [
            ("c2", ["yes of course"], "yes of course"),
            ("c1", ["the red house", "the house is red"], "the house is red"),
        ],
        "greedy": [
            ("c2", ["yes of course"], "yes"),
            ("c1", ["the red house", "the house is red"], "a house"),
        ],
    }
    scores = save_bleu_results(tmp_path, "fisher_test", "epoch-3_avg-1", results)
    assert scores["beam_4"].score == pytest.approx(100.0)
    summary = (tmp_path / "bleu-summary-fisher_test-epoch-3_avg-1.txt").read_text().splitlines()
    assert summary[0] == "settings\tBLEU"
    assert summary[1] == "beam_4\t100.00"
    assert summary[2].startswith("greedy\t")
    recogs = (tmp_path / "recogs-fisher_test-beam_4-epoch-3_avg-1.txt").read_text().splitlines()
    assert recogs[:3] == [
        "c1:\tref=['the', 'red', 'house']",
        "c1:\tref=['the', 'house', 'is', 'red']",
        "c1:\thyp=['the', 'house', 'is', 'red']",
    ]
    report = (tmp_path / "bleu-fisher_test-beam_4-epoch-3_avg-1.txt").read_text()
    assert report.startswith("BLEU = 100.00")
    assert "references per segment: 1, 2" in report
