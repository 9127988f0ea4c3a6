"""Synchronous template grammar: parallel Mandarin / Spanish / English sentences.

Each template is written once over aligned slots (a subject, a verb with a compatible
object, a number, ...), so the three renderings are translations of each other by
construction. Two domains imitate the LESS setting:

* ``read``: formal, third person, news / read-aloud style (supervised data, test_clean);
* ``conversational``: questions, first and second person, fillers (in-the-wild data).

They share part of the lexicon with different word frequencies (see :mod:`lexicon`).

Sentences are normalised with :func:`less.data.text.normalize`; the normalised form is the
label text, while the punctuated display form is what the synthesizer reads (question
intonation, pauses after fillers). Sentences outside the length limits are rejected and
redrawn, which keeps CPU training cheap.

The combinatorial space of each domain (sum over templates of the product of slot sizes,
times the measured acceptance rate of the length filter) is far above 1e6, so random test
sentences essentially never repeat training ones; corpus building also removes exact
duplicates across splits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from less.data.text import normalize

from .lexicon import DOMAINS
from .morphology import es_contract
from .slots import Template
from .templates_conversational import conversational_templates
from .templates_read import read_templates

ZH_CHARS_RANGE = (6, 16)
ES_WORDS_RANGE = (5, 12)
MIN_EFFECTIVE_SPACE = 1e7


@dataclass(frozen=True)
class Sentence:
    zh: str  # normalised label texts
    es: str
    en: str
    zh_display: str  # punctuated text given to the synthesizer
    es_display: str
    domain: str
    template: str
    # the template's drawn slot values (language-neutral lexicon items), sorted by slot name:
    # what the sentence is about, for scene images (less.local.mini.scenes); not compared
    slots: tuple[tuple[str, Any], ...] = field(default=(), compare=False, repr=False)


# ----------------------------------------------------------------------- sampling

_TEMPLATE_BUILDERS = {"read": read_templates, "conversational": conversational_templates}
_TEMPLATE_CACHE: dict[str, list[Template]] = {}


def templates(domain: str) -> list[Template]:
    if domain not in _TEMPLATE_BUILDERS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    if domain not in _TEMPLATE_CACHE:
        _TEMPLATE_CACHE[domain] = _TEMPLATE_BUILDERS[domain]()
    return _TEMPLATE_CACHE[domain]


def _finish(
    rendered: tuple[str, str, str], domain: str, template: str, slots: dict[str, Any] | None = None
) -> Sentence | None:
    zh_display, es_display, en = rendered
    zh_display = zh_display.replace(" ", "")
    es_display = " ".join(es_contract(es_display).split())
    zh, es, en = normalize(zh_display, "zh"), normalize(es_display, "es"), normalize(en, "en")
    if not ZH_CHARS_RANGE[0] <= len(zh) <= ZH_CHARS_RANGE[1]:
        return None
    if not ES_WORDS_RANGE[0] <= len(es.split()) <= ES_WORDS_RANGE[1]:
        return None
    return Sentence(
        zh, es, en, zh_display, es_display, domain, template, tuple(sorted((slots or {}).items()))
    )


def _draw(template: Template, rng: random.Random) -> dict[str, Any]:
    return {
        name: rng.choices(slot.items, weights=slot.weights)[0]
        for name, slot in template.slots.items()
    }


class SentenceSampler:
    """Draws parallel sentences of one domain; deterministic given the seed."""

    def __init__(self, domain: str, seed: int | random.Random) -> None:
        self.domain = domain
        self.templates = templates(domain)
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        self._template_weights = [t.weight for t in self.templates]

    def sample(self) -> Sentence:
        for _ in range(1000):
            template = self.rng.choices(self.templates, weights=self._template_weights)[0]
            slots = _draw(template, self.rng)
            rendered = template.render(slots)
            sentence = _finish(rendered, self.domain, template.name, slots) if rendered else None
            if sentence is not None:
                return sentence
        raise RuntimeError(
            f"grammar of domain {self.domain!r} keeps producing sentences outside the length limits"
        )


def acceptance_rate(template: Template, domain: str, draws: int = 200, seed: int = 0) -> float:
    """Fraction of a template's renderings that pass the length filter."""
    rng = random.Random(seed)
    accepted = 0
    for _ in range(draws):
        rendered = template.render(_draw(template, rng))
        accepted += rendered is not None and _finish(rendered, domain, template.name) is not None
    return accepted / draws


def effective_space(domain: str) -> float:
    """Estimated number of distinct sentences the domain can produce (after the length filter)."""
    return sum(t.size * acceptance_rate(t, domain) for t in templates(domain))


def assert_large_space(domain: str, minimum: float = MIN_EFFECTIVE_SPACE) -> float:
    """Fail loudly if a grammar edit shrank the domain so much that test sentences could leak."""
    space = effective_space(domain)
    if space < minimum:
        raise AssertionError(
            f"domain {domain!r} can produce only ~{space:.3g} sentences (< {minimum:.0e})"
        )
    return space
