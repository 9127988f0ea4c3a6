"""Text normalisation shared by corpus preparation, tokenizers, LLM cleaning and scoring.

One function, :func:`normalize`, per language code (``zh``, ``es``, ``en``):

* Unicode NFKC, so full-width letters/digits/spaces become half-width;
* punctuation and symbols removed (``zh``) or turned into word breaks (``es``/``en``),
  keeping word-internal apostrophes in English (``don't``);
* case: Latin letters upper-cased inside Mandarin (as AISHELL/WenetSpeech scoring
  does), lower-cased for Spanish and English (as ESPnet's Fisher scoring does);
* digits spelled out the way the mini corpus grammar writes numbers
  (:func:`number_to_words`), so ``35`` and ``三十五`` score the same; a Mandarin year
  (four digits before 年) is read digit by digit, as said aloud: ``2019年`` -> ``二零一九年``.

Training text and hypotheses pass through the same function before any WER, CER or
BLEU is computed, so a model is never penalised for formatting.
"""

from __future__ import annotations

import re
import unicodedata

LANGUAGES = ("zh", "es", "en")

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_UNITS = ["", "十", "百", "千"]


def _zh_below_10000(n: int) -> str:
    digits = [int(d) for d in f"{n:04d}"]  # thousands, hundreds, tens, ones
    out: list[str] = []
    pending_zero = False
    started = False
    for i, d in enumerate(digits):
        unit = _ZH_UNITS[3 - i]
        if d == 0:
            if started:
                pending_zero = True
            continue
        if pending_zero:
            out.append("零")
            pending_zero = False
        out.append(_ZH_DIGITS[d] + unit)
        started = True
    return "".join(out)


def _zh_number(n: int) -> str:
    if n == 0:
        return "零"
    if n < 0:
        return "负" + _zh_number(-n)
    parts = []
    for unit_value, unit_name in ((10**8, "亿"), (10**4, "万")):
        if n >= unit_value:
            high, n = divmod(n, unit_value)
            parts.append(_zh_number(high) + unit_name)
            if 0 < n < unit_value // 10:
                parts.append("零")
    if n:
        parts.append(_zh_below_10000(n))
    text = "".join(parts)
    # 一十五 -> 十五 at the start, as people say and write it
    if text.startswith("一十"):
        text = text[1:]
    return text


_ES_UNITS = (
    "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince "
    "dieciséis diecisiete dieciocho diecinueve veinte veintiuno veintidós veintitrés "
    "veinticuatro veinticinco veintiséis veintisiete veintiocho veintinueve"
).split()
_ES_TENS = {
    3: "treinta",
    4: "cuarenta",
    5: "cincuenta",
    6: "sesenta",
    7: "setenta",
    8: "ochenta",
    9: "noventa",
}
_ES_HUNDREDS = {
    1: "ciento",
    2: "doscientos",
    3: "trescientos",
    4: "cuatrocientos",
    5: "quinientos",
    6: "seiscientos",
    7: "setecientos",
    8: "ochocientos",
    9: "novecientos",
}


def _es_below_1000(n: int) -> str:
    if n < 30:
        return _ES_UNITS[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _ES_TENS[tens] + ("" if ones == 0 else " y " + _ES_UNITS[ones])
    if n == 100:
        return "cien"
    hundreds, rest = divmod(n, 100)
    return _ES_HUNDREDS[hundreds] + ("" if rest == 0 else " " + _es_below_1000(rest))


def _es_apocope(words: str) -> str:
    """``uno`` before a noun (``mil``, ``millones``) becomes ``un`` (``veintiuno`` -> ``veintiún``)."""
    if words.endswith("veintiuno"):
        return words[: -len("veintiuno")] + "veintiún"
    if words.endswith("uno"):
        return words[: -len("uno")] + "un"
    return words


def _es_number(n: int) -> str:
    if n < 0:
        return "menos " + _es_number(-n)
    if n < 1000:
        return _es_below_1000(n)
    if n < 10**6:
        thousands, rest = divmod(n, 1000)
        head = "mil" if thousands == 1 else _es_apocope(_es_below_1000(thousands)) + " mil"
        return head + ("" if rest == 0 else " " + _es_below_1000(rest))
    millions, rest = divmod(n, 10**6)
    head = "un millón" if millions == 1 else _es_apocope(_es_number(millions)) + " millones"
    return head + ("" if rest == 0 else " " + _es_number(rest))


_EN_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = {
    2: "twenty",
    3: "thirty",
    4: "forty",
    5: "fifty",
    6: "sixty",
    7: "seventy",
    8: "eighty",
    9: "ninety",
}


def _en_below_1000(n: int) -> str:
    if n < 20:
        return _EN_UNITS[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + ("" if ones == 0 else " " + _EN_UNITS[ones])
    hundreds, rest = divmod(n, 100)
    return _EN_UNITS[hundreds] + " hundred" + ("" if rest == 0 else " " + _en_below_1000(rest))


def _en_number(n: int) -> str:
    if n < 0:
        return "minus " + _en_number(-n)
    parts = []
    for value, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= value:
            high, n = divmod(n, value)
            parts.append(_en_below_1000(high) + " " + name)
    if n or not parts:
        parts.append(_en_below_1000(n))
    return " ".join(parts)


def number_to_words(n: int, lang: str) -> str:
    """Spell out an integer as the mini corpus grammar (and normalisation) writes it.

    >>> number_to_words(35, "zh"), number_to_words(35, "es"), number_to_words(35, "en")
    ('三十五', 'treinta y cinco', 'thirty five')
    """
    if lang == "zh":
        return _zh_number(n)
    if lang == "es":
        return _es_number(n)
    if lang == "en":
        return _en_number(n)
    raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")


_DIGIT_RUN = re.compile(r"\d+")


_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d)[,.](?=\d{3}(?!\d))")

# A Mandarin year: four digits from 1000 to 2999 directly before 年, not part of a longer
# number (``1,998年`` is a count of years). Larger four-digit counts (``5000年的历史``)
# are durations and keep their ordinary reading; round thousands (``1000年前``) stay
# ambiguous and are read as years.
_ZH_YEAR = re.compile(r"(?<!\d)(?<!\d[,.])[12]\d{3}(?=[ \t]*年)")


def _zh_digit_by_digit(digits: str) -> str:
    """``2019`` -> ``二零一九``: how codes and years are read aloud."""
    return "".join(_ZH_DIGITS[int(d)] for d in digits)


def _spell_digits(text: str, lang: str) -> str:
    if lang == "zh":
        # Speakers say 二零一九年, not 二千零一十九年; months and days (三月五日) stay numbers.
        text = _ZH_YEAR.sub(lambda m: _zh_digit_by_digit(m.group(0)), text)
    # 1,000 (English) and 1.000 (Spanish) are one number.
    text = _THOUSANDS_SEPARATOR.sub("", text)

    def spell(match: re.Match) -> str:
        digits = match.group(0)
        # Codes, phone numbers, years-as-digit-strings: read digit by digit.
        if (len(digits) > 1 and digits.startswith("0")) or len(digits) > 9:
            if lang == "zh":
                return _zh_digit_by_digit(digits)
            return " ".join(number_to_words(int(d), lang) for d in digits)
        words = number_to_words(int(digits), lang)
        return words if lang == "zh" else f" {words} "

    return _DIGIT_RUN.sub(spell, text)


def _is_punct_or_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("P", "S")


def normalize(text: str, lang: str) -> str:
    """Normalise ``text`` for training targets and scoring in language ``lang``."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
    text = unicodedata.normalize("NFKC", text)
    if lang == "zh":
        text = _spell_digits(text, lang)
        kept = []
        for ch in text:
            if ch.isspace() or _is_punct_or_symbol(ch):
                # Keep a break between two Latin words (``OK GOOGLE``), drop it elsewhere.
                kept.append(" ")
            else:
                kept.append(ch.upper() if ch.isascii() else ch)
        joined = "".join(kept)
        # Spaces survive only between two ASCII alphanumerics.
        return re.sub(r"(?<![A-Z0-9]) +| +(?![A-Z0-9])", "", joined).strip()
    text = text.lower()
    text = _spell_digits(text, lang)
    out = []
    for i, ch in enumerate(text):
        if (
            ch == "'"
            and lang == "en"
            and 0 < i < len(text) - 1
            and text[i - 1].isalpha()
            and text[i + 1].isalpha()
        ):
            out.append(ch)
        elif _is_punct_or_symbol(ch):
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def scoring_units(text: str, lang: str) -> list[str]:
    """Units an error rate counts: characters for Mandarin (Latin words kept whole), words otherwise."""
    text = normalize(text, lang)
    if lang == "zh":
        units: list[str] = []
        for piece in text.split(" "):
            for token in re.findall(r"[A-Z0-9']+|\S", piece):
                units.append(token)
        return units
    return text.split()


# Characters that belong to a Latin word in normalised Mandarin text (see scoring_units).
_LATIN_EDGE = re.compile(r"[A-Z0-9']")


def join_units(units: list[str], lang: str) -> str:
    """Text made of scoring units, such that ``scoring_units(join_units(u, lang), lang) == u``.

    Mandarin units are written without spaces, except between two Latin words
    (``["AI", "GPT"]`` -> ``AI GPT``, not ``AIGPT``, which would score as one word).
    """
    if lang != "zh":
        return " ".join(units)
    out = ""
    for unit in units:
        if out and _LATIN_EDGE.match(out[-1]) and _LATIN_EDGE.match(unit[:1]):
            out += " "
        out += unit
    return out
