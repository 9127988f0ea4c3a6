"""Slots, templates and phrase builders shared by the two template domains.

A template draws each slot independently (weighted by the domain's word frequencies)
and renders aligned zh / es / en strings from the drawn items; the product of the slot
sizes is the number of distinct renderings, which :mod:`.grammar` checks is large.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from less.data.text import number_to_words

from . import lexicon as lx
from .morphology import en_indefinite, es_count, es_indefinite, zh_count


@dataclass(frozen=True)
class Slot:
    items: tuple[Any, ...]
    weights: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Template:
    name: str
    weight: float
    slots: dict[str, Slot]
    render: Callable[[dict[str, Any]], tuple[str, str, str] | None]

    @property
    def size(self) -> int:
        return math.prod(len(slot) for slot in self.slots.values())


# --------------------------------------------------------------------------- slots


def weighted(items: Sequence[Any], domain: int) -> Slot:
    kept = [(item, item.weights[domain]) for item in items if item.weights[domain] > 0]
    return Slot(tuple(i for i, _ in kept), tuple(w for _, w in kept))


def uniform(items: Sequence[Any]) -> Slot:
    return Slot(tuple(items), tuple(1.0 for _ in items))


def numbers(lo: int, hi: int, scale: float = 10.0) -> Slot:
    """Integers lo..hi, small ones more likely (as in real speech)."""
    values = tuple(range(lo, hi + 1))
    return Slot(values, tuple(1.0 / (1.0 + (n - lo) / scale) for n in values))


def concat(*slots: Slot) -> Slot:
    """One slot drawing from each part equally often (whatever the parts' sizes)."""
    items, weights = [], []
    for slot in slots:
        total = sum(slot.weights)
        items.extend(slot.items)
        weights.extend(w / total for w in slot.weights)
    return Slot(tuple(items), tuple(weights))


NOT_VOLITIONAL = {"perder", "encontrar", "recibir"}  # nobody "wants to lose" a thing


def verb_objects(
    domain: int,
    volitional: bool = False,
    with_adjective: bool = False,
    verbs: set[str] | None = None,
) -> Slot:
    """(verb, noun[, adjective]) triples whose categories are compatible."""
    items, weights = [], []
    for verb in lx.VERBS:
        if verb.weights[domain] <= 0 or (volitional and verb.es_infinitive in NOT_VOLITIONAL):
            continue
        if verbs is not None and verb.es_infinitive not in verbs:
            continue
        for noun in lx.NOUNS:
            if noun.weights[domain] <= 0 or not verb.categories & noun.categories:
                continue
            base = verb.weights[domain] * noun.weights[domain]
            if not with_adjective:
                items.append((verb, noun, None))
                weights.append(base)
                continue
            adjectives = [
                a for a in lx.ADJECTIVES if a.categories & noun.categories and a.weights[domain] > 0
            ]
            for adj in adjectives:
                items.append((verb, noun, adj))
                weights.append(base * adj.weights[domain] / len(adjectives))
    return Slot(tuple(items), tuple(weights))


def noun_adjectives(domain: int, categories: set[str], gradable: bool) -> Slot:
    items, weights = [], []
    for noun in lx.NOUNS:
        if noun.weights[domain] <= 0 or not noun.categories & categories:
            continue
        for adj in lx.ADJECTIVES:
            if (
                adj.weights[domain] > 0
                and adj.categories & noun.categories
                and (adj.gradable or not gradable)
            ):
                items.append((noun, adj))
                weights.append(noun.weights[domain] * adj.weights[domain])
    return Slot(tuple(items), tuple(weights))


def nouns(domain: int, categories: set[str]) -> Slot:
    return weighted([n for n in lx.NOUNS if n.categories & categories], domain)


def possessed(domain: int) -> Slot:
    items = [(p, r) for p in lx.POSSESSORS for r in lx.RELATIVES if r.weights[domain] > 0]
    return Slot(tuple(items), tuple(r.weights[domain] for _, r in items))


# ----------------------------------------------------------------- phrase helpers


def zh_np(n: int, noun: lx.Noun, adj: lx.Adjective | None = None) -> str:
    return f"{zh_count(n)}{noun.classifier}{adj.zh_attributive if adj else ''}{noun.zh}"


def es_np(n: int, noun: lx.Noun, adj: lx.Adjective | None = None) -> str:
    plural = n != 1
    tail = f" {adj.es(noun.gender, plural)}" if adj else ""
    return f"{es_count(n, noun.gender)} {noun.es_form(plural)}{tail}"


def en_np(n: int, noun: lx.Noun, adj: lx.Adjective | None = None) -> str:
    return f"{number_to_words(n, 'en')} {adj.en + ' ' if adj else ''}{noun.en_form(n != 1)}"


def es_indef_np(noun: lx.Noun, adj: lx.Adjective | None) -> str:
    tail = f" {adj.es(noun.gender, False)}" if adj else ""
    return f"{es_indefinite(noun.gender)} {noun.es}{tail}"


def en_indef_np(noun: lx.Noun, adj: lx.Adjective | None) -> str:
    phrase = f"{adj.en} {noun.en}" if adj else noun.en
    return f"{en_indefinite(phrase)} {phrase}"


def filler(f: tuple[str, str, str, float]) -> tuple[str, str, str]:
    zh, es, en, _ = f
    return (f"{zh}，" if zh else "", f"{es}, " if es else "", f"{en} " if en else "")


def es_possessed(possessor: tuple[str, str, str, str], relative: lx.Relative) -> str:
    return f"{possessor[2] if relative.gender == 'f' else possessor[1]} {relative.es}"


FILLERS = Slot(tuple(lx.FILLERS), tuple(f[3] for f in lx.FILLERS))
YEARS = tuple(range(1990, 2024))


def zh_year(year: int) -> str:
    return "".join(number_to_words(int(d), "zh") for d in str(year)) + "年"


PERIODS = (
    ("今年", "este año", "this year"),
    ("去年", "el año pasado", "last year"),
    ("上个月", "el mes pasado", "last month"),
    ("这个月", "este mes", "this month"),
)
YEAR_TIMES = tuple(
    lx.TimeExpression(
        zh_year(y), f"en {number_to_words(y, 'es')}", f"in {number_to_words(y, 'en')}", (1.0, 0.0)
    )
    for y in YEARS
)


def with_zero(slot: Slot, weight: float) -> Slot:
    """Prepend 0 (a template's "no number" variant) to a number slot."""
    return Slot((0, *slot.items), (weight, *slot.weights))
