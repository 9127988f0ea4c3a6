"""Templates of the ``read`` domain: formal, third person, news and read-aloud style."""

from __future__ import annotations

from typing import Any

from less.data.text import number_to_words

from . import lexicon as lx
from .morphology import es_conjugate, es_count, zh_count
from .slots import (
    PERIODS,
    YEAR_TIMES,
    Template,
    concat,
    en_indef_np,
    en_np,
    es_indef_np,
    es_np,
    numbers,
    uniform,
    verb_objects,
    weighted,
    zh_np,
)


def read_templates() -> list[Template]:
    d = 0
    subjects = weighted(lx.PEOPLE, d)
    past, future = weighted(lx.PAST_TIMES, d), weighted(lx.FUTURE_TIMES, d)
    places = weighted(lx.PLACES + lx.CITIES, d)
    cities = weighted(lx.CITIES, d)

    def past_count(s: dict[str, Any]) -> tuple[str, str, str]:
        t, p, (v, noun, adj), n = s["time"], s["subject"], s["object"], s["n"]
        return (
            f"{t.zh}{p.zh}{v.zh}了{zh_np(n, noun, adj)}。",
            f"{t.es} {p.es} {v.es('pret' + p.person)} {es_np(n, noun, adj)}.",
            f"{t.en} {p.en} {v.en_past} {en_np(n, noun, adj)}",
        )

    def at_place(s: dict[str, Any]) -> tuple[str, str, str]:
        p, (v, noun, adj), n, pl = s["subject"], s["object"], s["n"], s["place"]
        return (
            f"{p.zh}在{pl.zh}{v.zh}了{zh_np(n, noun, adj)}。",
            f"{p.es} {v.es('pret' + p.person)} {es_np(n, noun, adj)} en {pl.es}.",
            f"{p.en} {v.en_past} {en_np(n, noun, adj)} {pl.en_at}",
        )

    def future_plan(s: dict[str, Any]) -> tuple[str, str, str]:
        t, p, (v, noun, adj) = s["time"], s["subject"], s["object"]
        zh_adj = adj.zh_attributive if adj else ""
        return (
            f"{t.zh}{p.zh}将{v.zh}一{noun.classifier}{zh_adj}{noun.zh}。",
            f"{t.es} {p.es} {v.es('fut' + p.person)} {es_indef_np(noun, adj)}.",
            f"{t.en} {p.en} will {v.en_base} {en_indef_np(noun, adj)}",
        )

    def statistics(s: dict[str, Any]) -> tuple[str, str, str]:
        (zh_t, es_t, en_t), city, (zh_s, es_s, plural, en_s), up, n = (
            s["period"],
            s["city"],
            s["statistic"],
            s["up"],
            s["n"],
        )
        es_verb = (
            ("aumentaron" if plural else "aumentó")
            if up
            else ("disminuyeron" if plural else "disminuyó")
        )
        return (
            f"{zh_t}{city.zh}的{zh_s}{'增加' if up else '减少'}了百分之{number_to_words(n, 'zh')}。",
            f"{es_t} {es_s} en {city.es} {es_verb} un {number_to_words(n, 'es')} por ciento.",
            f"{en_t} {en_s} {city.en_at} {'increased' if up else 'decreased'} by {number_to_words(n, 'en')} percent",
        )

    def weather(s: dict[str, Any]) -> tuple[str, str, str]:
        t, city, n, high = s["time"], s["city"], s["n"], s["high"]
        grados = "grado" if n == 1 else "grados"
        degrees = "degree" if n == 1 else "degrees"
        if high:
            return (
                f"{t.zh}{city.zh}的气温将达到{number_to_words(n, 'zh')}度。",
                f"{t.es} la temperatura en {city.es} llegará a {es_count(n, 'm')} {grados}.",
                f"{t.en} the temperature {city.en_at} will reach {number_to_words(n, 'en')} {degrees}",
            )
        return (
            f"{t.zh}{city.zh}的气温将降到零下{number_to_words(n, 'zh')}度。",
            f"{t.es} la temperatura en {city.es} bajará a {es_count(n, 'm')} {grados} bajo cero.",
            f"{t.en} the temperature {city.en_at} will drop to {number_to_words(n, 'en')} {degrees} below zero",
        )

    def organisation(s: dict[str, Any]) -> tuple[str, str, str]:
        t, (zh_o, es_o, en_o), ((zh_v, es_v, en_v, _), noun), n = (
            s["time"],
            s["org"],
            s["action"],
            s["n"],
        )
        return (
            f"{t.zh}{zh_o}{zh_v}了{zh_np(n, noun)}。",
            f"{t.es} {es_o} {es_conjugate(es_v, 'pret3s')} {es_np(n, noun)}.",
            f"{t.en} {en_o} {en_v} {en_np(n, noun)}",
        )

    def travel(s: dict[str, Any]) -> tuple[str, str, str]:
        t, p, (zh_tr, es_tr, en_tr), city = s["time"], s["subject"], s["transport"], s["city"]
        return (
            f"{t.zh}{p.zh}坐{zh_tr}去了{city.zh}。",
            f"{t.es} {p.es} {'viajaron' if p.plural else 'viajó'} a {city.es} en {es_tr}.",
            f"{t.en} {p.en} traveled {city.en_to} by {en_tr}",
        )

    def habit(s: dict[str, Any]) -> tuple[str, str, str]:
        p, act, n = s["subject"], s["activity"], s["n"]
        hours = "hora" if n == 1 else "horas"
        en_verb = act.en_base if p.plural else act.en_3s
        return (
            f"{p.zh}每天{act.zh}{zh_count(n)}个小时。",
            f"{p.es} {es_conjugate(act.es_infinitive, 'pres' + p.person)} {es_count(n, 'f')} {hours} al día.",
            f"{p.en} {en_verb} {number_to_words(n, 'en')} hour{'s' if n != 1 else ''} a day",
        )

    def met(s: dict[str, Any]) -> tuple[str, str, str] | None:
        t, p, o, pl = s["time"], s["subject"], s["object_person"], s["place"]
        if p.zh == o.zh:
            return None
        return (
            f"{t.zh}{p.zh}在{pl.zh}见到了{o.zh}。",
            f"{t.es} {p.es} {'vieron' if p.plural else 'vio'} a {o.es} en {pl.es}.",
            f"{t.en} {p.en} saw {o.en} {pl.en_at}",
        )

    org_actions = []
    for action in lx.ORGANISATION_ACTIONS:
        org_actions.extend((action, noun) for noun in lx.organisation_objects(action[3]))

    no_future = {"perder", "encontrar"}
    future_verbs = {v.es_infinitive for v in lx.VERBS} - no_future
    future_objects = concat(
        verb_objects(d, verbs=future_verbs),
        verb_objects(d, with_adjective=True, verbs=future_verbs),
    )
    return [
        Template(
            "past_count",
            3,
            {"time": past, "subject": subjects, "object": verb_objects(d), "n": numbers(1, 99)},
            past_count,
        ),
        Template(
            "past_count_adj",
            2,
            {
                "time": past,
                "subject": subjects,
                "object": verb_objects(d, with_adjective=True),
                "n": numbers(1, 99),
            },
            past_count,
        ),
        Template(
            "at_place",
            2,
            {
                "subject": subjects,
                "object": verb_objects(d),
                "n": numbers(1, 99),
                "place": places,
            },
            at_place,
        ),
        Template(
            "future_plan",
            2,
            {"time": future, "subject": subjects, "object": future_objects},
            future_plan,
        ),
        Template(
            "statistics",
            2,
            {
                "period": uniform(PERIODS),
                "city": cities,
                "statistic": uniform(lx.STATISTICS),
                "up": uniform((True, False)),
                "n": numbers(1, 60),
            },
            statistics,
        ),
        Template(
            "weather",
            1,
            {
                "time": future,
                "city": cities,
                "n": numbers(1, 45, 100.0),
                "high": uniform((True, False)),
            },
            weather,
        ),
        Template(
            "organisation",
            2,
            {
                "time": past,
                "org": uniform(lx.ORGANISATIONS),
                "action": uniform(org_actions),
                "n": numbers(1, 999, 20.0),
            },
            organisation,
        ),
        Template(
            "travel",
            1,
            {
                "time": concat(past, weighted(YEAR_TIMES, d)),
                "subject": subjects,
                "transport": uniform(lx.TRANSPORT),
                "city": cities,
            },
            travel,
        ),
        Template(
            "habit",
            1,
            {
                "subject": subjects,
                "activity": weighted(lx.ACTIVITIES, d),
                "n": numbers(1, 12, 100.0),
            },
            habit,
        ),
        Template(
            "met",
            1,
            {"time": past, "subject": subjects, "object_person": subjects, "place": places},
            met,
        ),
    ]
