"""Scene images of mini-corpus sentences: what a sentence is about, drawn without words.

The visual-grounding experiments (speech-image contrastive learning beside BEST-RQ, after
arXiv 2509.17523) need an image per utterance whose content the speech describes. The
synchronous grammar already draws every sentence from language-neutral slots (a subject, a
verb with its object, a count, a place, a time), and the Mandarin, Spanish and English
renderings are translations of each other, so one scene per sentence serves every language.

A :class:`Scene` is derived from the sentence's drawn slot values only: no random draw is
added to the corpus generator (its audio and texts stay byte-identical for a seed), and no
rendered string enters the scene, so the zh and es renderings of a sentence share it. (The
mini corpus's Mandarin and Spanish tasks draw different sentences, so across the two corpora
the languages share the scenes' vocabulary — objects, colours, counts, places — and only
rarely a whole image: 3 of 580 train_sup scenes for the default corpus.)

What is drawn (64 x 64 RGB, no text):

* the place (``place`` / ``city`` slots) tints the background;
* the time (``time`` / ``period``) is a band along the top;
* each person, object, action and activity is an icon: a shape and a hue fixed by the
  lexicon item (a hash of it, stable across runs and machines), a dark outline; a colour
  adjective sets the fill, ``big`` / ``small`` the size, any other adjective a mark inside;
* a count of objects (the ``n`` of templates whose noun phrase carries it) is that many
  copies of the object's icon, at most :data:`MAX_COPIES`; a plural subject is two people;
* a quantity that is not a count (a price, an age, a percentage, hours) is a gauge along
  the bottom, its length growing with the number.

What a photo could not show either is left out: negation, questions, tense, fillers.
Icons sit in separate cells of a grid with gaps between them, so the number of connected
non-background regions is the number of icons plus the band and the gauge (the tests count
them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from typing import Any

SIZE = 64
MAX_COPIES = 9  # a count above this is drawn as this many copies (a crowd)
GRID = (4, 3)  # icon cells (columns, rows) between the band and the gauge
CELL = 16
TOP = 8  # the icon grid starts below the band
OUTLINE = (40, 40, 40)
ICON_PIXELS = {"small": 6, "normal": 10, "big": 14}

# templates whose "n" is the number of objects in their noun phrase (elsewhere a quantity)
COUNTED = frozenset({"past_count", "past_count_adj", "at_place", "want", "have", "organisation"})
COLOURS = {
    "red": (220, 30, 30),
    "white": (255, 255, 255),
    "black": (20, 20, 20),
    "blue": (30, 60, 220),
    "green": (30, 170, 60),
    "yellow": (240, 210, 20),
}
SIZES = {"big": "big", "small": "small"}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "hexagon")
PERSON_SLOTS = ("subject", "speaker", "object_person", "who", "possessor")
THING_SLOTS = ("object", "thing", "action", "activity", "org", "transport", "statistic")
IGNORED_SLOTS = frozenset({"filler", "ask", "near", "negative", "half", "up", "high", "plural"})


@dataclass(frozen=True)
class Icon:
    key: str  # the lexicon item's stable id
    kind: str  # person / object / action / activity / thing
    copies: int
    colour: tuple[int, int, int] | None  # from a colour adjective
    size: str  # small / normal / big
    mark: str | None  # another adjective: a mark inside the icon


@dataclass(frozen=True)
class Scene:
    background: str | None  # the place's id
    band: str | None  # the time's id
    icons: tuple[Icon, ...]
    gauge: int | None  # a quantity that is not a count

    @property
    def key(self) -> str:
        """Identical scenes share one image: the key names it."""
        blob = json.dumps(asdict(self), sort_keys=True, ensure_ascii=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    @property
    def num_icons(self) -> int:
        return sum(icon.copies for icon in self.icons)

    @property
    def num_regions(self) -> int:
        """Connected non-background regions of the rendered image."""
        return self.num_icons + (self.band is not None) + (self.gauge is not None)


# ------------------------------------------------------------------------ scene


def _canonical(value: Any) -> Any:
    """A JSON-able form of a slot value with a fixed order (a frozenset's repr changes with
    the process's string-hash seed, so ``repr`` is not stable across runs)."""
    if dataclasses.is_dataclass(value):
        return [
            type(value).__name__,
            {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)},
        ]
    if isinstance(value, (set, frozenset)):
        return sorted(_canonical(v) for v in value)
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    return value


def item_id(value: Any) -> str:
    """A stable id of a slot value: it holds every language's form (and nothing drawn at
    random), so it is the same whichever language the sentence is spoken in."""
    blob = json.dumps(_canonical(value), sort_keys=True, ensure_ascii=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _adjective_attributes(adjective: Any) -> tuple[tuple[int, int, int] | None, str, str | None]:
    if adjective is None:
        return None, "normal", None
    if adjective.en in COLOURS:
        return COLOURS[adjective.en], "normal", None
    if adjective.en in SIZES:
        return None, SIZES[adjective.en], None
    return None, "normal", item_id(adjective)


def _thing_icons(slot: str, value: Any, copies: int) -> list[Icon]:
    """Icons of an object-like slot: (verb, noun, adjective), (noun, adjective), a noun, an
    activity, ((verb forms), noun), or a plain lexicon tuple of strings."""
    from .lexicon import Adjective, Noun, Relative, Verb

    if isinstance(value, Relative):  # "where is my brother?"
        return _person_icons(value, False)
    parts = value if isinstance(value, tuple) else (value,)
    nouns = [p for p in parts if isinstance(p, Noun)]
    adjectives = [p for p in parts if isinstance(p, Adjective)]
    colour, size, mark = _adjective_attributes(adjectives[0] if adjectives else None)
    icons = []
    for part in parts:
        if isinstance(part, Verb) or (isinstance(part, tuple) and nouns):
            icons.append(Icon(item_id(part), "action", 1, None, "normal", None))
    if nouns:
        icons.append(Icon(item_id(nouns[0]), "object", copies, colour, size, mark))
    elif not icons:  # an activity, an organisation, a means of transport, a statistic
        kind = "activity" if slot == "activity" else "thing"
        icons.append(Icon(item_id(value), kind, 1, None, "normal", None))
    return icons


def _person_icons(value: Any, plural: bool) -> list[Icon]:
    parts = (
        value
        if isinstance(value, tuple) and not all(isinstance(p, str) for p in value)
        else (value,)
    )
    copies = 2 if plural else 1
    return [Icon(item_id(p), "person", copies, None, "normal", None) for p in parts]


def scene_of(sentence: Any) -> Scene:
    """The scene of a sentence from :mod:`.grammar` (its drawn slots)."""
    slots = dict(sentence.slots)
    if not slots:
        raise ValueError(
            f"sentence {sentence.zh!r} carries no drawn slots (built by an old grammar?)"
        )
    unknown = (
        set(slots)
        - set(PERSON_SLOTS)
        - set(THING_SLOTS)
        - IGNORED_SLOTS
        - {"place", "city", "time", "period", "n", "hour"}
    )
    if unknown:
        raise ValueError(
            f"template {sentence.template!r}: no scene rule for slot(s) {sorted(unknown)}"
        )
    number = slots.get("n", slots.get("hour"))
    counted = sentence.template in COUNTED and number is not None
    copies = max(1, min(int(number), MAX_COPIES)) if counted else 1
    if sentence.template == "too_much" and slots.get("plural"):
        copies = 2
    icons: list[Icon] = []
    for name in PERSON_SLOTS:
        if name in slots:
            icons += _person_icons(slots[name], bool(getattr(slots[name], "plural", False)))
    for name in THING_SLOTS:
        if name in slots:
            icons += _thing_icons(name, slots[name], copies)
    place = slots.get("place", slots.get("city"))
    time = slots.get("time", slots.get("period"))
    gauge = None if counted or number is None else int(number)
    return Scene(
        background=None if place is None else item_id(place),
        band=None if time is None else item_id(time),
        icons=tuple(icons),
        gauge=gauge,
    )


# ---------------------------------------------------------------------- drawing


def _digest(key: str, salt: str) -> int:
    return int(hashlib.sha1(f"{salt}:{key}".encode()).hexdigest(), 16)


def _hue_colour(key: str, salt: str, low: int, high: int) -> tuple[int, int, int]:
    h = _digest(key, salt)
    return tuple(low + (h >> (8 * i)) % (high - low + 1) for i in range(3))  # type: ignore[return-value]


def _cells(scene: Scene) -> list[tuple[int, int]]:
    """Grid cells in an order fixed by the scene (its key), so images vary in layout."""
    cells = [(c, r) for r in range(GRID[1]) for c in range(GRID[0])]
    return sorted(cells, key=lambda cell: _digest(scene.key, f"cell{cell}"))


def _draw_icon(draw, shape: str, box: tuple[int, int, int, int], fill, mark) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill, outline=OUTLINE)
    elif shape == "square":
        draw.rectangle(box, fill=fill, outline=OUTLINE)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill, outline=OUTLINE)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill, outline=OUTLINE)
    elif shape == "cross":
        w = max(1, (x1 - x0) // 3)
        draw.rectangle((x0, cy - w / 2, x1, cy + w / 2), fill=fill, outline=OUTLINE)
        draw.rectangle((cx - w / 2, y0, cx + w / 2, y1), fill=fill, outline=OUTLINE)
    else:  # hexagon
        q = (x1 - x0) / 4
        draw.polygon(
            [(x0 + q, y0), (x1 - q, y0), (x1, cy), (x1 - q, y1), (x0 + q, y1), (x0, cy)],
            fill=fill,
            outline=OUTLINE,
        )
    if mark is not None and x1 - x0 >= 6:
        draw.rectangle((cx - 1, cy - 1, cx + 1, cy + 1), fill=mark)


def render(scene: Scene):
    """The scene as a 64 x 64 RGB PIL image (deterministic: no anti-aliasing, no randomness)."""
    from PIL import Image, ImageDraw

    background = (
        (255, 255, 255)
        if scene.background is None
        else _hue_colour(scene.background, "bg", 180, 250)
    )
    image = Image.new("RGB", (SIZE, SIZE), background)
    draw = ImageDraw.Draw(image)
    if scene.band is not None:
        draw.rectangle(
            (1, 1, SIZE - 2, 4), fill=_hue_colour(scene.band, "band", 0, 160), outline=OUTLINE
        )
    if scene.gauge is not None:
        length = 4 + round((SIZE - 12) * min(scene.gauge, 100) / 100)
        draw.rectangle(
            (4, SIZE - 5, 4 + length, SIZE - 2), fill=_hue_colour("gauge", "gauge", 0, 120)
        )
    cells = _cells(scene)
    drawn = [(icon, copy) for icon in scene.icons for copy in range(icon.copies)]
    if len(drawn) > len(cells):
        raise ValueError(f"scene {scene.key}: {len(drawn)} icons for {len(cells)} cells")
    for (icon, _), (col, row) in zip(drawn, cells):
        pixels = ICON_PIXELS[icon.size]
        x0 = col * CELL + (CELL - pixels) // 2
        y0 = TOP + row * CELL + (CELL - pixels) // 2
        shape = (
            "circle"
            if icon.kind == "person" and _digest(icon.key, "shape") % 2
            else SHAPES[_digest(icon.key, "shape") % len(SHAPES)]
        )
        fill = icon.colour or _hue_colour(icon.key, "fill", 30, 230)
        mark = None if icon.mark is None else _hue_colour(icon.mark, "mark", 0, 255)
        _draw_icon(draw, shape, (x0, y0, x0 + pixels - 1, y0 + pixels - 1), fill, mark)
    return image


def png_bytes(scene: Scene) -> bytes:
    buffer = io.BytesIO()
    render(scene).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
