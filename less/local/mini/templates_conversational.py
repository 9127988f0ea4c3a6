"""Templates of the ``conversational`` domain: questions, first and second person, fillers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from less.data.text import number_to_words

from . import lexicon as lx
from .morphology import es_conjugate, es_contract, es_count, es_demonstrative, zh_count
from .slots import (
    FILLERS,
    Slot,
    Template,
    concat,
    en_indef_np,
    en_np,
    es_indef_np,
    es_np,
    es_possessed,
    filler,
    noun_adjectives,
    nouns,
    numbers,
    possessed,
    uniform,
    verb_objects,
    weighted,
    with_zero,
    zh_np,
)


@dataclass(frozen=True)
class Speaker:
    """A conversational subject: a pronoun (dropped in Spanish) or 'my brother'."""

    zh: str
    es: str  # "" when Spanish drops the pronoun
    en: str
    person: str  # 1s, 2s, 1p, 3s

    def en_verb(self, base: str, third: str) -> str:
        return third if self.person == "3s" else base


def speakers(domain: int, persons: set[str]) -> Slot:
    items, weights = [], []
    for zh, en, person in lx.PRONOUNS:
        if person in persons:
            items.append(Speaker(zh, "", en, person))
            weights.append(8.0)
    if "3s" in persons:
        for (possessor, relative), w in zip(possessed(domain).items, possessed(domain).weights):
            items.append(
                Speaker(
                    possessor[0] + relative.zh,
                    es_possessed(possessor, relative),
                    f"{possessor[3]} {relative.en}",
                    "3s",
                )
            )
            weights.append(w)
    return Slot(tuple(items), tuple(weights))


GUSTAR = {"1s": "me", "2s": "te", "1p": "nos", "3s": "le"}


def conversational_templates() -> list[Template]:
    d = 1
    fillers = FILLERS
    past, future = weighted(lx.PAST_TIMES, d), weighted(lx.FUTURE_TIMES, d)
    places = weighted(lx.PLACES + lx.CITIES, d)
    activities = weighted(lx.ACTIVITIES, d)
    pronouns = speakers(d, {"1s", "1p", "2s"})

    def how_many(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), (v, noun, _) = filler(s["filler"]), s["object"]
        cuantos = "cuántas" if noun.gender == "f" else "cuántos"
        return (
            f"{fz}你想{v.zh}几{noun.classifier}{noun.zh}？",
            f"{fe}¿{cuantos} {noun.es_plural} quieres {v.es_infinitive}?",
            f"{fn}how many {noun.en_plural} do you want to {v.en_base}",
        )

    def past_count(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), t, p, (v, noun, adj), n = (
            filler(s["filler"]),
            s["time"],
            s["speaker"],
            s["object"],
            s["n"],
        )
        return (
            f"{fz}{t.zh}{p.zh}{v.zh}了{zh_np(n, noun, adj)}。",
            f"{fe}{t.es} {v.es('pret' + p.person)} {es_np(n, noun, adj)}.",
            f"{fn}{t.en} {p.en} {v.en_past} {en_np(n, noun, adj)}",
        )

    def where_is(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), possessor, thing = filler(s["filler"]), s["possessor"], s["thing"]
        if isinstance(thing, lx.Relative):
            zh, es = possessor[0] + thing.zh, es_possessed(possessor, thing)
        else:
            zh = f"{possessor[0]}的{thing.zh}"
            es = f"{possessor[2] if thing.gender == 'f' else possessor[1]} {thing.es}"
        return (
            f"{fz}{zh}在哪里？",
            f"{fe}¿dónde está {es}?",
            f"{fn}where is {possessor[3]} {thing.en}",
        )

    def lets_go(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), t, pl, ask = filler(s["filler"]), s["time"], s["place"], s["ask"]
        if ask:
            return (
                f"你{t.zh}有空吗？我们去{pl.zh}吧。",
                es_contract(f"¿estás libre {t.es}? vamos a {pl.es}."),
                f"are you free {t.en} let's go {pl.en_to}",
            )
        return (
            f"{fz}我们{t.zh}去{pl.zh}吧。",
            es_contract(f"{fe}vamos a {pl.es} {t.es}."),
            f"{fn}let's go {pl.en_to} {t.en}",
        )

    def too_much(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), (noun, adj), plural, near = (
            filler(s["filler"]),
            s["thing"],
            s["plural"],
            s["near"],
        )
        zh_dem = ("这" if near else "那") + ("些" if plural else noun.classifier)
        es_dem = es_demonstrative(noun.gender, plural, near)
        copula = (
            ("están" if plural else "está") if adj.es_copula_estar else ("son" if plural else "es")
        )
        en_dem = {
            (True, False): "this",
            (True, True): "these",
            (False, False): "that",
            (False, True): "those",
        }[(near, plural)]
        return (
            f"{fz}我觉得{zh_dem}{noun.zh}太{adj.zh_predicative}了。",
            f"{fe}creo que {es_dem} {noun.es_form(plural)} {copula} demasiado {adj.es(noun.gender, plural)}.",
            f"{fn}i think {en_dem} {noun.en_form(plural)} {'are' if plural else 'is'} too {adj.en}",
        )

    def going_to(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), t, p, (v, noun, adj) = (
            filler(s["filler"]),
            s["time"],
            s["speaker"],
            s["object"],
        )
        zh_obj = f"一{noun.classifier}{adj.zh_attributive if adj else ''}{noun.zh}"
        es_obj, en_obj = es_indef_np(noun, adj), en_indef_np(noun, adj)
        if p.person == "2s":
            return (
                f"{fz}你{t.zh}要{v.zh}{zh_obj}吗？",
                f"{fe}¿vas a {v.es_infinitive} {es_obj} {t.es}?",
                f"{fn}are you going to {v.en_base} {en_obj} {t.en}",
            )
        es_aux, en_aux = ("voy", "i'm") if p.person == "1s" else ("vamos", "we're")
        return (
            f"{fz}{t.zh}{p.zh}要{v.zh}{zh_obj}。",
            f"{fe}{t.es} {es_aux} a {v.es_infinitive} {es_obj}.",
            f"{fn}{t.en} {en_aux} going to {v.en_base} {en_obj}",
        )

    def can_do(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), p, act = filler(s["filler"]), s["speaker"], s["activity"]
        saber = es_conjugate("saber", "pres" + p.person)
        if p.person in ("2s", "3s"):
            es_subject = f"{p.es} " if p.es else ""
            return (
                f"{fz}{p.zh}会{act.zh}吗？",
                f"{fe}¿{es_subject}{saber} {act.es_infinitive}?",
                f"{fn}can {p.en} {act.en_base}",
            )
        return (
            f"{fz}{p.zh}会{act.zh}。",
            f"{fe}{saber} {act.es_infinitive}.",
            f"{fn}{p.en} can {act.en_base}",
        )

    def likes(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), p, act, negative = (
            filler(s["filler"]),
            s["speaker"],
            s["activity"],
            s["negative"],
        )
        no = "no " if negative else ""
        es_head = f"a {p.es} " if p.es else ""
        es = f"{es_head}{no}{GUSTAR[p.person]} gusta {act.es_infinitive}"
        if p.person == "2s":
            en_do = "don't you" if negative else "do you"
            return (
                f"{fz}你{'不' if negative else ''}喜欢{act.zh}吗？",
                f"{fe}¿{es}?",
                f"{fn}{en_do} like to {act.en_base}",
            )
        if negative:
            en_verb = f"{'doesn' if p.person == '3s' else 'don'}'t like"
        else:
            en_verb = p.en_verb("like", "likes")
        return (
            f"{fz}{p.zh}{'不' if negative else ''}喜欢{act.zh}。",
            f"{fe}{es}.",
            f"{fn}{p.en} {en_verb} to {act.en_base}",
        )

    def how_often(s: dict[str, Any]) -> tuple[str, str, str]:
        p, act, n = s["speaker"], s["activity"], s["n"]
        es_times = "una vez" if n == 1 else f"{number_to_words(n, 'es')} veces"
        en_times = {1: "once", 2: "twice"}.get(n, f"{number_to_words(n, 'en')} times")
        es_subject = f"{p.es} " if p.es else ""
        return (
            f"{p.zh}每个星期{act.zh}{zh_count(n)}次。",
            f"{es_subject}{es_conjugate(act.es_infinitive, 'pres' + p.person)} {es_times} por semana.",
            f"{p.en} {p.en_verb(act.en_base, act.en_3s)} {en_times} a week",
        )

    def price(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), noun, near, n = filler(s["filler"]), s["thing"], s["near"], s["n"]
        zh_dem, es_dem = (
            ("这" if near else "那") + noun.classifier,
            es_demonstrative(noun.gender, False, near),
        )
        en_dem = "this" if near else "that"
        if n == 0:
            return (
                f"{fz}{zh_dem}{noun.zh}多少钱？",
                f"{fe}¿cuánto cuesta {es_dem} {noun.es}?",
                f"{fn}how much is {en_dem} {noun.en}",
            )
        return (
            f"{fz}{zh_dem}{noun.zh}{zh_count(n)}块钱。",
            f"{fe}{es_dem} {noun.es} cuesta {es_count(n, 'm')} {'yuan' if n == 1 else 'yuanes'}.",
            f"{fn}{en_dem} {noun.en} costs {number_to_words(n, 'en')} yuan",
        )

    def meet(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), t, hour, half, pl = (
            filler(s["filler"]),
            s["time"],
            s["hour"],
            s["half"],
            s["place"],
        )
        es_hour = "a la una" if hour == 1 else f"a las {number_to_words(hour, 'es')}"
        return (
            f"{fz}我们{t.zh}{zh_count(hour)}点{'半' if half else ''}在{pl.zh}见吧。",
            f"{fe}nos vemos {t.es} {es_hour}{' y media' if half else ''} en {pl.es}.",
            f"{fn}let's meet {t.en} at {number_to_words(hour, 'en')}{' thirty' if half else ''} {pl.en_at}",
        )

    def age(s: dict[str, Any]) -> tuple[str, str, str]:
        (possessor, relative), n = s["who"], s["n"]
        return (
            f"{possessor[0]}{relative.zh}今年{zh_count(n)}岁了。",
            f"{es_possessed(possessor, relative)} tiene {es_count(n, 'm')} {'año' if n == 1 else 'años'}.",
            f"{possessor[3]} {relative.en} is {number_to_words(n, 'en')} year{'s' if n != 1 else ''} old",
        )

    def have(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), who, noun, n = filler(s["filler"]), s["who"], s["thing"], s["n"]
        if who == "home":
            return (
                f"{fz}我们家有{zh_np(n, noun)}。",
                f"{fe}en casa tenemos {es_np(n, noun)}.",
                f"{fn}we have {en_np(n, noun)} at home",
            )
        if who == "you":
            return (
                f"{fz}你有{zh_np(n, noun)}吗？",
                f"{fe}¿tienes {es_np(n, noun)}?",
                f"{fn}do you have {en_np(n, noun)}",
            )
        return (
            f"{fz}我有{zh_np(n, noun)}。",
            f"{fe}tengo {es_np(n, noun)}.",
            f"{fn}i have {en_np(n, noun)}",
        )

    def did_you(s: dict[str, Any]) -> tuple[str, str, str]:
        t, (v, noun, _) = s["time"], s["object"]
        return (
            f"你{t.zh}{v.zh}了那{noun.classifier}{noun.zh}吗？",
            f"¿{v.es('pret2s')} {es_demonstrative(noun.gender, False, near=False)} {noun.es} {t.es}?",
            f"did you {v.en_base} that {noun.en} {t.en}",
        )

    def help_me(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), (v, noun, _) = filler(s["filler"]), s["object"]
        return (
            f"{fz}你能帮我{v.zh}这{noun.classifier}{noun.zh}吗？",
            f"{fe}¿me ayudas a {v.es_infinitive} {es_demonstrative(noun.gender, False)} {noun.es}?",
            f"{fn}can you help me {v.en_base} this {noun.en}",
        )

    def want(s: dict[str, Any]) -> tuple[str, str, str]:
        (fz, fe, fn), p, (v, noun, adj), n = filler(s["filler"]), s["speaker"], s["object"], s["n"]
        es_want = es_conjugate("querer", "pres" + p.person)
        if p.person == "2s":
            return (
                f"{fz}你想{v.zh}{zh_np(n, noun, adj)}吗？",
                f"{fe}¿{es_want} {v.es_infinitive} {es_np(n, noun, adj)}?",
                f"{fn}do you want to {v.en_base} {en_np(n, noun, adj)}",
            )
        return (
            f"{fz}{p.zh}想{v.zh}{zh_np(n, noun, adj)}。",
            f"{fe}{es_want} {v.es_infinitive} {es_np(n, noun, adj)}.",
            f"{fn}{p.en} want to {v.en_base} {en_np(n, noun, adj)}",
        )

    volitional = verb_objects(d, volitional=True)
    volitional_adj = concat(volitional, verb_objects(d, volitional=True, with_adjective=True))
    helpful = {
        "lavar",
        "reparar",
        "abrir",
        "cerrar",
        "encontrar",
        "vender",
        "leer",
        "escribir",
        "enviar",
        "devolver",
    }
    near_future = weighted(
        [t for t in lx.FUTURE_TIMES if t.zh in lx.NEAR_FUTURE or t.zh.startswith("星期")], d
    )
    things = weighted([n for n in lx.NOUNS if n.categories & {"p", "an", "v"}] + lx.RELATIVES, d)
    possessors = uniform(lx.POSSESSORS)
    yes_no = uniform((True, False))
    return [
        Template("how_many", 2, {"filler": fillers, "object": volitional}, how_many),
        Template(
            "past_count",
            3,
            {
                "filler": fillers,
                "time": past,
                "speaker": pronouns,
                "object": concat(verb_objects(d), verb_objects(d, with_adjective=True)),
                "n": numbers(1, 30, 3.0),
            },
            past_count,
        ),
        Template(
            "where_is", 2, {"filler": fillers, "possessor": possessors, "thing": things}, where_is
        ),
        Template(
            "lets_go",
            2,
            {"filler": fillers, "time": future, "place": places, "ask": yes_no},
            lets_go,
        ),
        Template(
            "too_much",
            2,
            {
                "filler": fillers,
                "thing": noun_adjectives(
                    d, {"p", "f", "d", "v", "fu", "a", "b", "c", "an", "r", "m"}, True
                ),
                "plural": yes_no,
                "near": yes_no,
            },
            too_much,
        ),
        Template(
            "going_to",
            2,
            {"filler": fillers, "time": future, "speaker": pronouns, "object": volitional_adj},
            going_to,
        ),
        Template(
            "can_do",
            1,
            {
                "filler": fillers,
                "speaker": speakers(d, {"1s", "1p", "2s", "3s"}),
                "activity": activities,
            },
            can_do,
        ),
        Template(
            "likes",
            1,
            {
                "filler": fillers,
                "speaker": speakers(d, {"1s", "1p", "2s", "3s"}),
                "activity": activities,
                "negative": yes_no,
            },
            likes,
        ),
        Template(
            "how_often",
            1,
            {
                "speaker": speakers(d, {"1s", "1p", "3s"}),
                "activity": activities,
                "n": numbers(1, 7, 2.0),
            },
            how_often,
        ),
        Template(
            "price",
            2,
            {
                "filler": fillers,
                "thing": nouns(d, {"p", "f", "d", "v", "fu", "a", "c"}),
                "near": yes_no,
                "n": with_zero(numbers(1, 999, 10.0), 30.0),
            },
            price,
        ),
        Template(
            "meet",
            2,
            {
                "filler": fillers,
                "time": near_future,
                "hour": numbers(1, 12, 100.0),
                "half": yes_no,
                "place": places,
            },
            meet,
        ),
        Template("age", 1, {"who": possessed(d), "n": numbers(1, 90, 30.0)}, age),
        Template(
            "have",
            1,
            {
                "filler": fillers,
                "who": uniform(("home", "you", "me")),
                "thing": nouns(d, {"an", "fu", "a", "v", "p"}),
                "n": numbers(1, 20, 2.0),
            },
            have,
        ),
        Template("did_you", 1, {"time": past, "object": verb_objects(d)}, did_you),
        Template(
            "help_me", 1, {"filler": fillers, "object": verb_objects(d, verbs=helpful)}, help_me
        ),
        Template(
            "want",
            2,
            {
                "filler": fillers,
                "speaker": pronouns,
                "object": volitional_adj,
                "n": numbers(1, 20, 2.0),
            },
            want,
        ),
    ]
