"""Response cleaning on adversarial LLM answers (less.llm.cleaning)."""

from __future__ import annotations

import pytest

from less.llm.cleaning import CleaningConfig, answer_complete, clean_answer

EN_HYP = "i goed to the store yesterday for buy milk"
EN_FIX = "i went to the store yesterday to buy milk"
ZH_HYP = "我们要关住这个问题"
ZH_FIX = "我们要关注这个问题"


@pytest.mark.parametrize(
    "raw",
    [
        "I went to the store yesterday to buy milk.",
        "Sure! Here is the corrected text: I went to the store yesterday to buy milk.",
        "Sure! Here is the corrected text:\n\nI went to the store yesterday to buy milk.",
        'Here\'s the corrected sentence:\n"I went to the store yesterday to buy milk."',
        '"I went to the store yesterday to buy milk."',
        "“I went to the store yesterday to buy milk.”",
        "Corrected: I went to the store yesterday to buy milk.",
        "**Corrected:** I went to the store yesterday to buy milk.",
        "The corrected sentence is: I went to the store yesterday to buy milk.",
        "```\nI went to the store yesterday to buy milk.\n```",
        "```text\nI went to the store yesterday to buy milk.\n```\nI fixed the verb.",
        "I went to the store yesterday to buy milk.\n\nExplanation: 'goed' is not a word; 'for buy' should be 'to buy'.",
        "I went to the store yesterday to buy milk. I corrected 'goed' to 'went'.",
        "I went to the store yesterday to buy milk (note: changed 'goed' to 'went').",
        "Original: i goed to the store yesterday for buy milk\nCorrected: I went to the store yesterday to buy milk",
        "<think>The verb is wrong.</think>I went to the store yesterday to buy milk.",
        "- I went to the store yesterday to buy milk.",
    ],
)
def test_english_wrappers_are_removed(raw: str) -> None:
    cleaned = clean_answer(raw, EN_HYP, "en")
    assert cleaned.accepted, cleaned
    assert cleaned.text == EN_FIX


@pytest.mark.parametrize(
    "raw",
    [
        "我们要关注这个问题",
        "修正后：我们要关注这个问题",
        "修正后的文本：\n我们要关注这个问题。",
        "好的，修正后的文本是：“我们要关注这个问题。”",
        "识别结果：我们要关住这个问题\n改正后：我们要关注这个问题",
        "「我们要关注这个问题」（注：将“关住”改为“关注”）",
        "我们要关注这个问题。\n说明：“关住”应为“关注”。",
    ],
)
def test_chinese_wrappers_are_removed(raw: str) -> None:
    cleaned = clean_answer(raw, ZH_HYP, "zh")
    assert cleaned.accepted, cleaned
    assert cleaned.text == ZH_FIX


def test_speech_that_starts_like_a_preamble_is_kept() -> None:
    # "okay ..." is how people talk; only a preamble the hypothesis lacks is removed.
    cleaned = clean_answer("Okay, so I went to the store.", "okay so i goed to the store", "en")
    assert cleaned.text == "okay so i went to the store"
    assert (
        clean_answer("Okay! I went to the store.", "i goed to the store", "en").text
        == "i went to the store"
    )
    assert clean_answer("好的我们明天见", "好的我们明天间", "zh").text == "好的我们明天见"


@pytest.mark.parametrize(
    ("raw", "hypothesis", "lang", "reason"),
    [
        ("", EN_HYP, "en", "empty"),
        ("   \n\n ", EN_HYP, "en", "empty"),
        ("Here is the corrected text:", EN_HYP, "en", "empty"),
        ('""', EN_HYP, "en", "empty"),
        ("我昨天去商店买牛奶", EN_HYP, "en", "wrong_script"),
        ("We need to pay attention to this problem.", ZH_HYP, "zh", "wrong_script"),
        (
            "Sure! Here is the corrected text: " + " ".join([EN_FIX] * 10),
            EN_HYP,
            "en",
            "length_ratio",
        ),
        (ZH_FIX * 10, ZH_HYP, "zh", "length_ratio"),
        ("I went.", EN_HYP, "en", "length_ratio"),
        ("I'm sorry, but I can't help with that request.", EN_HYP, "en", "refusal"),
        ("抱歉，我无法完成这个任务。", ZH_HYP, "zh", "refusal"),
    ],
)
def test_implausible_answers_are_rejected(
    raw: str, hypothesis: str, lang: str, reason: str
) -> None:
    cleaned = clean_answer(raw, hypothesis, lang)
    assert not cleaned.accepted
    assert cleaned.reason == reason
    assert cleaned.text == ""


def test_chinese_with_latin_words_is_not_wrong_script() -> None:
    cleaned = clean_answer("打开OK GOOGLE的设置", "打开OK GOOGLE的设直", "zh")
    assert cleaned.accepted and cleaned.text == "打开OK GOOGLE的设置"


def test_length_bounds_are_flags() -> None:
    long_answer = (
        "i went to the store yesterday to buy some fresh milk and bread and eggs and cheese"
    )
    assert clean_answer(long_answer, EN_HYP, "en").accepted  # 16 words for 9: within 2x + 2
    strict = CleaningConfig(max_length_ratio=1.2, length_slack=1)
    assert clean_answer(long_answer, EN_HYP, "en", strict).reason == "length_ratio"


def test_answer_is_normalised_like_the_hypothesis() -> None:
    cleaned = clean_answer(
        "I bought 35 apples, didn't I?", "i bought thirty five apples didn't i", "en"
    )
    assert cleaned.text == "i bought thirty five apples didn't i"
    assert clean_answer("我买了35个苹果。", "我买了三十五个平果", "zh").text == "我买了三十五个苹果"


@pytest.mark.parametrize(
    ("generated", "complete"),
    [
        ("I went to the store", False),  # the line may go on
        ("I went to the store.\n", True),
        ("Sure! Here is the corrected text:\n", False),  # only a label so far
        ("Sure! Here is the corrected text:\n\nI went to the store.\n", True),
        ("Original: i goed to the store\n", False),  # an echo of the input, the answer follows
        ("Original: i goed to the store\nCorrected: I went to the store.\n", True),
        ("```\n", False),
        ("<think>\nthe verb is wrong\n", False),
        ("<think>the verb</think>\nI went to the store.\n", True),
        ("修正后：\n", False),
        ("修正后：我们要关注这个问题\n", True),
    ],
)
def test_answer_complete_lets_generation_stop_early(generated: str, complete: bool) -> None:
    assert answer_complete(generated, EN_HYP) is complete


def test_trailing_remarks_in_parentheses_are_dropped() -> None:
    assert (
        clean_answer(
            "She doesn't know where the station is. (no changes needed)",
            "she dont know where is the station",
            "en",
        ).text
        == "she doesn't know where the station is"
    )
