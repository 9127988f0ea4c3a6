"""Worked examples for few-shot prompts of base LMs, drawn only from data the recipe may use.

A base LM (Gemma 3 270M) follows no instruction; shown k pairs "noisy translation ->
corrected translation" it continues the pattern for the teacher's hypothesis. Where
the pairs come from decides whether the recipe stays honest:

* ``--few-shot-source FILE``: references of the *supervised training set* (a cut
  manifest: the English translation for ``ast``, the transcript for ``asr``) or of the
  text-only corpus (a ``.txt`` file, one sentence per line), with teacher-like errors
  simulated by :class:`WordErrorSimulator`; a share of the examples stays unchanged,
  so the model also learns to leave a right sentence alone.
* ``--few-shot-examples FILE``: explicit pairs, JSON lines
  ``{"hypothesis": ..., "corrected": ..., "source": "<cut id or file>"}``, e.g. real
  teacher output on held-out supervised cuts.

Never from dev or test data. :class:`HeldOutGuard` holds the ids and normalised
texts (transcripts, translations, hidden references) of every ``--exclude-cuts``
manifest: an explicit example file with a test cut id or a test text is *refused*
with an error naming the example; a source pool has its colliding sentences removed
before the draw (a templated corpus repeats sentences across splits by chance) and
the drawn examples are checked again. A source whose file name says it is a dev or
test split (``*_cuts_dev*``, ``*_cuts_test*``) is refused outright.

The draw is deterministic (``random.Random(seed)`` over the pool in file order), and
the same k examples open every prompt of a run; they are hashed into ``prompt_sha``.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from less.data.text import join_units, normalize, scoring_units

logger = logging.getLogger(__name__)

_HELD_OUT_SPLIT = re.compile(r"_cuts_(dev|test)[^/]*$|(^|[_./-])(dev|test[a-z_]*)\.jsonl(\.gz)?$")
# A cut id of a held-out split (mini-ast-test_clean-00012-0, mini-ast-dev-00003-0): catches a renamed file.
_HELD_OUT_ID = re.compile(r"(?:^|[^a-z])(?:dev|test(?:_[a-z]+)?)-\d")


@dataclass(frozen=True)
class FewShotExample:
    hypothesis: str  # noisy text, as a teacher would write it
    corrected: str  # the reference
    source: str = ""  # where the reference came from (cut id, file:line)

    def pair(self) -> tuple[str, str]:
        return self.hypothesis, self.corrected


class HeldOutOverlapError(ValueError):
    """Few-shot examples that come from, or repeat, a test set."""


def _reference_texts(supervision) -> list[str]:
    """Every text a supervision reveals: transcript, translations, hidden references."""
    custom = supervision.custom or {}
    texts = [supervision.text or "", custom.get("ref_text") or ""]
    for key in ("translated_text", "ref_translated_text"):
        value = (custom.get(key) or {}).get("en") if isinstance(custom.get(key), dict) else None
        texts.extend(value if isinstance(value, list) else [value or ""])
    return [text for text in texts if text]


class HeldOutGuard:
    """Ids and normalised texts of held-out cuts; examples must share neither."""

    def __init__(self, lang: str, cut_files: Sequence[str | Path] = ()) -> None:
        from less.data.cuts import read_cuts

        self.lang = lang
        self.files = [str(path) for path in cut_files]
        self.ids: set[str] = set()
        self.texts: set[str] = set()
        for path in self.files:
            for cut in read_cuts(path):
                self.ids.add(cut.id)
                for supervision in cut.supervisions:
                    self.ids.update({supervision.id, supervision.recording_id})
                    self.texts.update(
                        filter(None, (normalize(t, lang) for t in _reference_texts(supervision)))
                    )
        if self.files:
            logger.info(
                "few-shot guard: %d test ids and %d test texts from %s",
                len(self.ids),
                len(self.texts),
                ", ".join(self.files),
            )

    def overlap(self, example: FewShotExample) -> str | None:
        """Why ``example`` may not be used, or ``None``."""
        if example.source and example.source in self.ids:
            return f"its source {example.source!r} is a test cut"
        if example.source and _HELD_OUT_ID.search(example.source):
            return f"its source {example.source!r} is named like a dev/test cut"
        for name, text in (("corrected", example.corrected), ("hypothesis", example.hypothesis)):
            if normalize(text, self.lang) in self.texts:
                return f"its {name} text {text!r} is a test reference"
        return None

    def check(self, examples: Iterable[FewShotExample], origin: str) -> None:
        problems = [(example, reason) for example in examples if (reason := self.overlap(example))]
        if problems:
            shown = "; ".join(
                f"{example.source or example.corrected!r}: {reason}"
                for example, reason in problems[:5]
            )
            raise HeldOutOverlapError(
                f"{origin}: {len(problems)} few-shot example(s) overlap the test sets "
                f"({', '.join(self.files)}): {shown}. Few-shot examples must come from training data only."
            )


def refuse_held_out_source(path: str | Path) -> None:
    """A file named like a dev/test split is never a source of examples."""
    if _HELD_OUT_SPLIT.search(Path(path).name):
        raise HeldOutOverlapError(
            f"{path}: looks like a dev/test split; few-shot examples must come from "
            "training data (e.g. the train_sup cuts or the text-only corpus)"
        )


def load_example_file(path: str | Path) -> list[FewShotExample]:
    """Explicit pairs from JSON lines ``{"hypothesis", "corrected", "source"?}``."""
    examples = []
    for line_number, line in enumerate(
        Path(path).read_text(encoding="utf-8").splitlines(), start=1
    ):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            example = FewShotExample(
                str(record["hypothesis"]), str(record["corrected"]), str(record.get("source", ""))
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}:{line_number}: expected a JSON object with 'hypothesis' and 'corrected' "
                f"({type(error).__name__}: {error})"
            ) from error
        if "\n" in example.hypothesis or "\n" in example.corrected or not example.corrected.strip():
            raise ValueError(f"{path}:{line_number}: example texts must be one non-empty line each")
        examples.append(example)
    if not examples:
        raise ValueError(f"{path}: no examples")
    return examples


def load_reference_pool(path: str | Path, task: str, lang: str) -> list[tuple[str, str]]:
    """``(source id, normalised reference)`` from a training cut manifest or a text file."""
    path = Path(path)
    refuse_held_out_source(path)
    pool: list[tuple[str, str]] = []
    if path.suffix == ".txt":
        for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            text = normalize(line, lang)
            if text:
                pool.append((f"{path.name}:{line_number}", text))
        return pool
    from less.data.cuts import read_cuts

    for cut in read_cuts(path):
        for supervision in cut.supervisions:
            if task == "ast":
                translation = ((supervision.custom or {}).get("translated_text") or {}).get(lang)
                reference = (
                    translation[0] if isinstance(translation, list) and translation else translation
                )
            else:
                reference = supervision.text
            text = normalize(reference or "", lang)
            if text:
                pool.append((cut.id, text))
    if not pool:
        raise ValueError(
            f"{path}: no {'translations' if task == 'ast' else 'transcripts'} in language {lang!r}"
        )
    return pool


class WordErrorSimulator:
    """Recogniser/translator-like errors on scoring units (words; characters for ``zh``).

    Per unit, with the sentence's error rate: substitution (60 %; half of them by a
    unit of the pool's vocabulary that looks alike: same first letter and similar
    length, else any), deletion (20 %), insertion (20 %; the unit repeated or a random
    one). Substitutes come from the pool itself, so errors stay in the domain's words.
    """

    def __init__(self, vocabulary: Iterable[str], lang: str) -> None:
        self.lang = lang
        self.vocabulary = sorted(set(vocabulary))
        if not self.vocabulary:
            raise ValueError("the error simulator needs a vocabulary")
        self._by_initial: dict[str, list[str]] = {}
        for unit in self.vocabulary:
            self._by_initial.setdefault(unit[0], []).append(unit)

    def _substitute(self, unit: str, rng: random.Random) -> str:
        alike = [
            u
            for u in self._by_initial.get(unit[0], [])
            if u != unit and abs(len(u) - len(unit)) <= 2
        ]
        if alike and rng.random() < 0.5:
            return rng.choice(alike)
        return rng.choice(self.vocabulary)

    def corrupt(self, text: str, rate: float, rng: random.Random) -> str:
        out: list[str] = []
        for unit in scoring_units(text, self.lang):
            if rng.random() >= rate:
                out.append(unit)
                continue
            draw = rng.random()
            if draw < 0.6:
                out.append(self._substitute(unit, rng))
            elif draw < 0.8:
                continue
            else:
                out.extend([unit, unit if rng.random() < 0.5 else rng.choice(self.vocabulary)])
        return join_units(out, self.lang)


@dataclass
class FewShotConfig:
    count: int = 0  # k examples per prompt
    source: str | None = None  # training cuts or text-only corpus (simulated errors)
    examples_file: str | None = None  # explicit pairs (JSON lines)
    exclude_cuts: tuple[str, ...] = ()  # test sets the examples must not touch
    seed: int = 0
    min_error_rate: float = 0.1
    max_error_rate: float = 0.4
    unchanged_fraction: float = 0.25  # share of examples whose hypothesis is already right


def draw_examples(config: FewShotConfig, task: str, lang: str) -> list[FewShotExample]:
    """The ``config.count`` examples of a run: deterministic for a given seed and files."""
    if config.count <= 0:
        return []
    if (config.source is None) == (config.examples_file is None):
        raise ValueError(
            "--few-shot needs exactly one of --few-shot-source and --few-shot-examples"
        )
    if not config.exclude_cuts:
        logger.warning(
            "--few-shot without --exclude-cuts: the examples are not checked against any test set"
        )
    guard = HeldOutGuard(lang, config.exclude_cuts)
    rng = random.Random(config.seed)
    if config.examples_file is not None:
        refuse_held_out_source(config.examples_file)
        examples = load_example_file(config.examples_file)
        guard.check(examples, config.examples_file)  # refuse the file, do not quietly fix it
        if len(examples) < config.count:
            raise ValueError(
                f"{config.examples_file}: {len(examples)} examples, --few-shot asks for {config.count}"
            )
        return rng.sample(examples, config.count)
    pool = load_reference_pool(config.source, task, lang)  # type: ignore[arg-type]
    held_out = [source for source, _ in pool if _HELD_OUT_ID.search(source)]
    if held_out:
        raise HeldOutOverlapError(
            f"{config.source}: holds dev/test cuts ({', '.join(held_out[:3])}, ...); few-shot "
            "examples must come from training data"
        )
    clean = [
        (source, text)
        for source, text in pool
        if guard.overlap(FewShotExample(text, text, source)) is None
    ]
    if len(clean) < len(pool):
        logger.info(
            "few-shot pool %s: %d of %d sentences dropped (they occur in a test set)",
            config.source,
            len(pool) - len(clean),
            len(pool),
        )
    distinct = list(dict.fromkeys(clean))
    if len(distinct) < config.count:
        raise ValueError(
            f"{config.source}: {len(distinct)} usable sentences, --few-shot asks for {config.count}"
        )
    simulator = WordErrorSimulator(
        (u for _, text in distinct for u in scoring_units(text, lang)), lang
    )
    unchanged = round(config.unchanged_fraction * config.count)
    examples = []
    for position, (source, text) in enumerate(rng.sample(distinct, config.count)):
        example = FewShotExample(text, text, source)
        if position >= unchanged:
            # A low rate may leave the sentence as it was, and in a templated corpus a
            # substituted word may make another (test) sentence: draw again then.
            for _ in range(20):
                noisy = simulator.corrupt(
                    text, rng.uniform(config.min_error_rate, config.max_error_rate), rng
                )
                candidate = FewShotExample(noisy, text, source)
                if noisy and noisy != text and guard.overlap(candidate) is None:
                    example = candidate
                    break
        examples.append(example)
    rng.shuffle(examples)  # unchanged ones anywhere, not all first
    guard.check(examples, f"examples drawn from {config.source}")
    return examples
