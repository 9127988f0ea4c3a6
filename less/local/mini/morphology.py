"""Spanish and English morphology for the mini corpus grammar.

Conjugation of the regular Spanish paradigm plus the irregular forms the lexicon
needs, adjective and numeral agreement, articles, demonstratives and contractions,
so that templates never spell an inflected form by hand.
"""

from __future__ import annotations

import re

from less.data.text import number_to_words

# Irregular Spanish forms; keys: pres1s..pres3p, pret1s..pret3p, fut3s, fut3p, ...
ES_IRREGULAR: dict[str, dict[str, str]] = {
    "encontrar": {
        "pres1s": "encuentro",
        "pres2s": "encuentras",
        "pres3s": "encuentra",
        "pres3p": "encuentran",
    },
    "perder": {"pres1s": "pierdo", "pres2s": "pierdes", "pres3s": "pierde", "pres3p": "pierden"},
    "cerrar": {"pres1s": "cierro", "pres2s": "cierras", "pres3s": "cierra", "pres3p": "cierran"},
    "devolver": {
        "pres1s": "devuelvo",
        "pres2s": "devuelves",
        "pres3s": "devuelve",
        "pres3p": "devuelven",
    },
    "jugar": {
        "pres1s": "juego",
        "pres2s": "juegas",
        "pres3s": "juega",
        "pres3p": "juegan",
        "pret1s": "jugué",
    },
    "traer": {
        "pres1s": "traigo",
        "pret1s": "traje",
        "pret2s": "trajiste",
        "pret3s": "trajo",
        "pret1p": "trajimos",
        "pret3p": "trajeron",
    },
    "leer": {
        "pret1s": "leí",
        "pret2s": "leíste",
        "pret3s": "leyó",
        "pret1p": "leímos",
        "pret3p": "leyeron",
    },
    "pedir": {
        "pres1s": "pido",
        "pres2s": "pides",
        "pres3s": "pide",
        "pres3p": "piden",
        "pret3s": "pidió",
        "pret3p": "pidieron",
    },
    "construir": {
        "pres1s": "construyo",
        "pres2s": "construyes",
        "pres3s": "construye",
        "pres3p": "construyen",
        "pret3s": "construyó",
        "pret3p": "construyeron",
    },
    "enviar": {"pres1s": "envío", "pres2s": "envías", "pres3s": "envía", "pres3p": "envían"},
    "esquiar": {"pres1s": "esquío", "pres2s": "esquías", "pres3s": "esquía", "pres3p": "esquían"},
    "ver": {"pres1s": "veo", "pret1s": "vi", "pret3s": "vio"},
    "tocar": {"pret1s": "toqué"},
    "practicar": {"pret1s": "practiqué"},
    "saber": {
        "pres1s": "sé",
        "pret1s": "supe",
        "pret2s": "supiste",
        "pret3s": "supo",
        "pret1p": "supimos",
        "pret3p": "supieron",
        "fut3s": "sabrá",
        "fut3p": "sabrán",
    },
    "querer": {
        "pres1s": "quiero",
        "pres2s": "quieres",
        "pres3s": "quiere",
        "pres3p": "quieren",
        "pret1s": "quise",
        "pret2s": "quisiste",
        "pret3s": "quiso",
        "pret1p": "quisimos",
        "pret3p": "quisieron",
        "fut3s": "querrá",
        "fut3p": "querrán",
    },
}

_PERSONS = ("1s", "2s", "3s", "1p", "3p")
_ENDINGS = {
    "ar": {"pres": ("o", "as", "a", "amos", "an"), "pret": ("é", "aste", "ó", "amos", "aron")},
    "er": {"pres": ("o", "es", "e", "emos", "en"), "pret": ("í", "iste", "ió", "imos", "ieron")},
    "ir": {"pres": ("o", "es", "e", "imos", "en"), "pret": ("í", "iste", "ió", "imos", "ieron")},
}
_FUTURE_ENDINGS = ("é", "ás", "á", "emos", "án")


def es_conjugate(infinitive: str, form: str) -> str:
    """Spanish verb form ``form`` (``pres3s``, ``pret1s``, ``fut3p``, ``inf``) of a (possibly multiword) verb.

    Only the first word is conjugated: ``tocar la guitarra`` -> ``toco la guitarra``.
    """
    head, _, rest = infinitive.partition(" ")
    if form == "inf":
        word = head
    elif head in ES_IRREGULAR and form in ES_IRREGULAR[head]:
        word = ES_IRREGULAR[head][form]
    else:
        tense, person = form[:-2], form[-2:]
        index = _PERSONS.index(person)
        if tense == "fut":
            word = head + _FUTURE_ENDINGS[index]
        else:
            word = head[:-2] + _ENDINGS[head[-2:]][tense][index]
    return f"{word} {rest}" if rest else word


def es_adjective(base: str, gender: str, plural: bool) -> str:
    """Agree a Spanish adjective given in the masculine singular."""
    if base.endswith("o"):
        word = base[:-1] + ("a" if gender == "f" else "o")
    else:
        word = base
    if not plural:
        return word
    if word.endswith(("a", "e", "o")):
        return word + "s"
    if word.endswith("z"):
        return word[:-1] + "ces"
    return word + "es"


def es_indefinite(gender: str) -> str:
    return "una" if gender == "f" else "un"


def es_demonstrative(gender: str, plural: bool, near: bool = True) -> str:
    table = {True: ("este", "esta", "estos", "estas"), False: ("ese", "esa", "esos", "esas")}[near]
    return table[(2 if plural else 0) + (1 if gender == "f" else 0)]


def es_count(n: int, gender: str) -> str:
    """A cardinal before a noun: ``veintiún libros``, ``una casa``, ``doscientas casas``."""
    words = number_to_words(n, "es")
    if gender == "f":
        words = re.sub(r"ientos\b", "ientas", words)
        words = re.sub(r"\buno$", "una", words)
        words = re.sub(r"veintiuno$", "veintiuna", words)
    else:
        words = re.sub(r"\buno$", "un", words)
        words = re.sub(r"veintiuno$", "veintiún", words)
    return words


def zh_count(n: int) -> str:
    """A cardinal before a classifier: 两 本, not 二 本."""
    return "两" if n == 2 else number_to_words(n, "zh")


_AN_EXCEPTIONS = {"useful", "university", "uniform", "unique", "european", "one"}
_AN_SILENT_H = {"hour", "honest"}


def en_indefinite(next_word: str) -> str:
    word = next_word.split()[0]
    if word in _AN_SILENT_H:
        return "an"
    if word in _AN_EXCEPTIONS:
        return "a"
    return "an" if word[0] in "aeiou" else "a"


def es_contract(text: str) -> str:
    """Spanish obligatory contractions: a el -> al, de el -> del."""
    text = re.sub(r"\ba el\b", "al", text)
    return re.sub(r"\bde el\b", "del", text)
