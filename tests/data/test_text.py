"""less.data.text: the normalisation shared by training targets and scoring."""

import pytest

from less.data.text import join_units, normalize, number_to_words, scoring_units


@pytest.mark.parametrize(
    "n, zh, es, en",
    [
        (0, "零", "cero", "zero"),
        (15, "十五", "quince", "fifteen"),
        (21, "二十一", "veintiuno", "twenty one"),
        (35, "三十五", "treinta y cinco", "thirty five"),
        (100, "一百", "cien", "one hundred"),
        (101, "一百零一", "ciento uno", "one hundred one"),
        (110, "一百一十", "ciento diez", "one hundred ten"),
        (1005, "一千零五", "mil cinco", "one thousand five"),
        (2500, "二千五百", "dos mil quinientos", "two thousand five hundred"),
        (10010, "一万零一十", "diez mil diez", "ten thousand ten"),
        (21000, "二万一千", "veintiún mil", "twenty one thousand"),
        (31000, "三万一千", "treinta y un mil", "thirty one thousand"),
    ],
)
def test_number_to_words(n, zh, es, en):
    assert number_to_words(n, "zh") == zh
    assert number_to_words(n, "es") == es
    assert number_to_words(n, "en") == en


def test_mandarin_full_width_punctuation_and_digits():
    assert normalize("你好，世界！ＡＢＣ ok google 35个。", "zh") == "你好世界ABC OK GOOGLE三十五个"
    assert normalize("  今天 是 星期一 ", "zh") == "今天是星期一"


def test_mandarin_years_are_read_digit_by_digit():
    assert normalize("2019年", "zh") == "二零一九年"
    assert normalize("1998年3月5日", "zh") == "一九九八年三月五日"  # month and day stay numbers
    assert normalize("在 2008 年，", "zh") == "在二零零八年"
    assert normalize("１９９０年代", "zh") == "一九九零年代"
    # not years: other counts keep the ordinary reading
    assert normalize("2019个", "zh") == "二千零一十九个"
    assert normalize("5000年的历史", "zh") == "五千年的历史"
    assert normalize("12019年", "zh") == "一万二千零一十九年"
    assert normalize("1,998年", "zh") == "一千九百九十八年"
    assert normalize("2019", "zh") == "二千零一十九"  # no 年: no guess
    assert scoring_units("2019年", "zh") == ["二", "零", "一", "九", "年"]


def test_mandarin_latin_words_stay_apart():
    text = "我用AI,GPT和ChatGPT。Claude也行；ok、google"
    assert normalize(text, "zh") == "我用AI GPT和CHATGPT CLAUDE也行OK GOOGLE"
    units = ["我", "用", "AI", "GPT", "和", "CHATGPT", "CLAUDE", "也", "行", "OK", "GOOGLE"]
    assert scoring_units(text, "zh") == units
    # units put back together (a segment's share of a reference) keep the words apart
    assert join_units(units, "zh") == "我用AI GPT和CHATGPT CLAUDE也行OK GOOGLE"
    assert scoring_units(join_units(units[2:4], "zh"), "zh") == ["AI", "GPT"]
    assert join_units(["hola", "mundo"], "es") == "hola mundo"


def test_spanish_and_english():
    assert normalize("¿Dónde está el 21 de Julio?", "es") == "dónde está el veintiuno de julio"
    assert normalize("Tengo 1.500 pesos", "es") == "tengo mil quinientos pesos"
    assert normalize("I don't know, 'quoted' 1,000 twenty-one.", "en") == (
        "i don't know quoted one thousand twenty one"
    )
    assert normalize("Call 0123", "en") == "call zero one two three"


def test_normalize_is_idempotent():
    for text, lang in [("你好，ＡＢＣ 12", "zh"), ("¡Hola! 3 niños", "es"), ("It's 5 p.m.", "en")]:
        once = normalize(text, lang)
        assert normalize(once, lang) == once


def test_scoring_units():
    assert scoring_units("你好 OK GOOGLE 世界", "zh") == ["你", "好", "OK", "GOOGLE", "世", "界"]
    assert scoring_units("Hola, mundo", "es") == ["hola", "mundo"]


def test_unknown_language():
    with pytest.raises(ValueError, match="unknown language"):
        normalize("x", "fr")


def test_atomic_outputs_have_normal_permissions(tmp_path):
    import os
    import stat

    from less.utils import write_text_atomic

    write_text_atomic(tmp_path / "x.txt", "hello")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o666 & ~umask
    assert (tmp_path / "x.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]  # no temp file left behind
