"""Training pairs for a small *correction* LM: a text-only stand-in for an instruct LLM.

LESS asks an instruct LLM to rewrite a teacher's hypothesis. No Chinese instruct model
ships offline, and rescoring the teacher's N-best with a language model (``--mode
rescore``) can only pick among hypotheses that share the teacher's errors: on the mini
corpus it left the pseudo-label error where it was (53.05 -> 52.97 % CER). A correction
LM learns to *rewrite*: it is a causal LM trained on ``<s> noisy \\n clean </s>``, where
``clean`` is a sentence of the text-only corpus and ``noisy`` the same sentence with
simulated recognition errors; the loss covers the clean part only. At correction time
``less.bin.llm_correct --mode correct --backend hf`` gives it ``<s> hypothesis \\n`` (the
plain prompt of a template whose ``[user]`` section is ``{hypothesis}``,
``less/llm/prompts/asr_zh_corrector.txt``) and it writes the corrected text.

Simulated errors (:class:`ErrorSimulator`), per character with a per-sentence rate drawn
uniformly from ``[0, max_rate]`` (some sentences stay clean, so the model also learns to
copy): substitution (60 %) by a similar-sounding character when the pronunciation table
knows one (70 % of substitutions), else by a random one; deletion (20 %); insertion of a
random character (20 %). Similar-sounding: the same syllable ignoring tone and stress,
else a syllable one phoneme away (:func:`confusion_sets`; pronunciations from espeak-ng,
which also voiced the mini corpus, or any ``char -> phoneme string`` function; or the
same-pinyin lists of the ``pycorrector`` package, :func:`pycorrector_confusions`).

Those simulated errors are not the teacher's: a seed recogniser *deletes* far more (the
mini corpus' seed at 20 % dev CER: 44 % substitutions, 51 % deletions, 6 % insertions,
where the simulator assumes 60/20/20), leaves ~40 % of utterances without any error, and
substitutes characters by its own favourites (卖 -> 买, 他 -> 她), not random ones. So the errors
can instead be *measured*: :func:`measure_error_stats` aligns the seed's dev decoding
(``recogs-dev-*.txt`` of ``less.bin.decode``) and counts substitution pairs, deletions,
insertions and per-utterance error rates (:class:`ErrorStats`); :class:`SeedErrorSimulator`
draws from them, backing off to homophones for characters the dev errors never showed.
Test-set results are refused (:func:`refuse_test_results`).
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import itertools
import json
import logging
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

SEPARATOR = "\n"  # what ends the hypothesis in a plain (no chat template) prompt
_TONE_AND_STRESS = set("12345ˈˌɜ")


def sound_key(phonemes: str) -> str:
    """A syllable's phonemes without tone and stress marks: homophones share it."""
    return "".join(ch for ch in phonemes if ch not in _TONE_AND_STRESS and not ch.isspace())


def _one_edit_apart(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def confusion_sets(chars: Iterable[str], pronounce: Callable[[str], str]) -> dict[str, list[str]]:
    """char -> similar-sounding characters: homophones (tone ignored) first, then
    characters whose syllable is one phoneme away. Characters without a pronunciation
    (``pronounce`` returns "") get none."""
    keys = {}
    for ch in sorted(set(chars)):
        key = sound_key(pronounce(ch))
        if key:
            keys[ch] = key
    by_key: dict[str, list[str]] = defaultdict(list)
    for ch, key in keys.items():
        by_key[key].append(ch)
    distinct = sorted(by_key)
    near = {key: [other for other in distinct if _one_edit_apart(key, other)] for key in distinct}
    sets = {}
    for ch, key in keys.items():
        same = [c for c in by_key[key] if c != ch]
        close = [c for other in near[key] for c in by_key[other]]
        sets[ch] = same + close
    return sets


class ErrorSimulator:
    """Corrupts a sentence the way a recogniser does: substitutions (often by a
    similar-sounding character), deletions and insertions."""

    def __init__(
        self,
        chars: Sequence[str],
        confusions: dict[str, list[str]] | None = None,
        substitute: float = 0.6,
        delete: float = 0.2,
        similar: float = 0.7,
    ) -> None:
        if not chars:
            raise ValueError("the error simulator needs a character inventory")
        self.chars = list(chars)
        self.confusions = confusions or {}
        self.substitute, self.delete, self.similar = substitute, delete, similar

    def draw_rate(self, max_rate: float, rng: random.Random) -> float:
        """A sentence's error rate: uniform in ``[0, max_rate]`` (some sentences stay
        clean, so the corrector also learns to copy)."""
        return rng.uniform(0.0, max_rate)

    def _other(self, ch: str, rng: random.Random) -> str:
        options = self.confusions.get(ch)
        if options and rng.random() < self.similar:
            return rng.choice(options)
        return rng.choice(self.chars)

    def corrupt(self, text: str, rate: float, rng: random.Random) -> str:
        out = []
        for ch in text:
            if rng.random() >= rate:
                out.append(ch)
                continue
            draw = rng.random()
            if draw < self.substitute:
                out.append(self._other(ch, rng))
            elif draw < self.substitute + self.delete:
                continue
            else:
                out.extend(
                    (ch, rng.choice(self.chars))
                    if rng.random() < 0.5
                    else (rng.choice(self.chars), ch)
                )
        return "".join(out)


def correction_pairs(
    sentences: Sequence[str],
    simulator: ErrorSimulator,
    copies: int,
    max_rate: float,
    rng: random.Random,
) -> list[tuple[str, str]]:
    """``copies`` (noisy, clean) pairs per sentence, error rates from the simulator's
    :meth:`~ErrorSimulator.draw_rate` (uniform in [0, max_rate], or measured)."""
    pairs = []
    for sentence in sentences:
        for _ in range(copies):
            noisy = simulator.corrupt(sentence, simulator.draw_rate(max_rate, rng), rng) or sentence
            pairs.append((noisy, sentence))
    return pairs


# ---------------------------------------------------------------- measured seed errors

_TEST_SPLIT_DIRS = {"test", "test_clean", "test_wild"}
_TEST_NAME = re.compile(r"(?:^|[^a-z])test", re.IGNORECASE)


def refuse_test_results(path: str | os.PathLike, cut_ids: Iterable[str] = ()) -> None:
    """Raise if ``path`` (or a cut it holds) belongs to a test set.

    The simulator learns *from* the statistics: measured on test data they would leak the
    test references' confusions into the corrector and flatter every test number after it.
    Decoding writes ``recogs-<test set>-...`` files, so the file name carries the set;
    cut ids (``mini-asr-test_clean-00000-0``) catch a renamed file. Directories are only
    refused when named exactly like a test split (a path such as pytest's
    ``/tmp/.../test_foo0/`` is not a test set).
    """
    path = Path(path)
    if _TEST_NAME.search(path.name) or any(part in _TEST_SPLIT_DIRS for part in path.parent.parts):
        raise ValueError(
            f"{path}: refusing test-set results for error statistics (use the dev set's "
            "recogs-dev-*.txt / errs-dev-*.txt)"
        )
    for cut_id in cut_ids:
        if _TEST_NAME.search(cut_id):
            raise ValueError(
                f"{path}: cut {cut_id!r} is from a test set; refusing it for error statistics "
                "(use the dev set's results)"
            )


def _read_errs_alignments(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per-cut alignments of an ``errs`` file's ``PER-UTT DETAILS`` section."""
    alignments: list[tuple[str, list[tuple[str, str]]]] = []
    inside = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("PER-UTT DETAILS"):
            inside = True
            continue
        if not inside:
            continue
        if not line.strip():
            break
        cut_id, sep, rest = line.partition(":\t")
        if not sep:
            raise ValueError(f"{path}:{number}: expected 'CUT_ID:\\t<alignment>', got {line!r}")
        pairs = []
        for token in rest.split():
            if token.startswith("(") and token.endswith(")") and "->" in token:
                ref, hyp = token[1:-1].split("->", 1)
                pairs.append((ref, hyp))
            else:
                pairs.append((token, token))
        alignments.append((cut_id, pairs))
    if not inside:
        raise ValueError(
            f"{path}: no 'PER-UTT DETAILS' section: not an errs file of less.bin.decode"
        )
    return alignments


def read_result_alignments(path: str | os.PathLike) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(cut_id, [(ref unit or EPS, hyp unit or EPS), ...])`` per cut of a decoding result
    file: a ``recogs-*`` file (aligned here with kaldialign) or an ``errs-*`` file (its
    alignments). A cut with several references (translation) is aligned to the first."""
    from less.decode.results import read_recogs
    from less.metrics import align_units

    path = Path(path)
    refuse_test_results(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such decoding result file")
    if path.name.startswith("errs"):
        alignments = _read_errs_alignments(path)
    else:
        alignments = [
            (cut_id, align_units(refs[0], hyp).alignment) for cut_id, refs, hyp in read_recogs(path)
        ]
    refuse_test_results(path, (cut_id for cut_id, _ in alignments))
    if not alignments:
        raise ValueError(f"{path}: no utterances")
    return alignments


@dataclass
class ErrorStats:
    """What a seed recogniser gets wrong, counted from its decoding of the dev set.

    Kept as JSON next to the corrector (``error_stats.json``) so its training can be
    repeated without the result files (``--error-stats error_stats.json``).
    """

    utterances: int = 0
    ref_units: int = 0
    substitutions: dict[str, dict[str, int]] = field(default_factory=dict)  # ref -> hyp -> count
    deletions: dict[str, int] = field(default_factory=dict)  # ref unit -> count
    insertions: dict[str, int] = field(default_factory=dict)  # hyp unit -> count
    ref_counts: dict[str, int] = field(
        default_factory=dict
    )  # ref unit -> occurrences (right or wrong)
    utterance_rates: list[float] = field(
        default_factory=list
    )  # (S + D + I) / ref length, one per utterance
    sources: list[dict] = field(default_factory=list)  # {"path", "sha256", "utterances"}

    @property
    def substitution_count(self) -> int:
        return sum(sum(hyps.values()) for hyps in self.substitutions.values())

    @property
    def deletion_count(self) -> int:
        return sum(self.deletions.values())

    @property
    def insertion_count(self) -> int:
        return sum(self.insertions.values())

    @property
    def error_rate(self) -> float:
        errors = self.substitution_count + self.deletion_count + self.insertion_count
        return errors / max(1, self.ref_units)

    def shares(self) -> tuple[float, float, float]:
        """Substitution, deletion and insertion shares of all errors (the old defaults
        0.6/0.2/0.2 when nothing was measured)."""
        counts = (self.substitution_count, self.deletion_count, self.insertion_count)
        total = sum(counts)
        return (0.6, 0.2, 0.2) if total == 0 else tuple(c / total for c in counts)  # type: ignore[return-value]

    def add(self, alignment: Sequence[tuple[str, str]]) -> None:
        """Count one utterance's alignment (``EPS`` on the missing side)."""
        from less.metrics import EPS

        ref_length = errors = 0
        for ref, hyp in alignment:
            if ref != EPS:
                ref_length += 1
                self.ref_counts[ref] = self.ref_counts.get(ref, 0) + 1
            if ref == hyp:
                continue
            errors += 1
            if ref == EPS:
                self.insertions[hyp] = self.insertions.get(hyp, 0) + 1
            elif hyp == EPS:
                self.deletions[ref] = self.deletions.get(ref, 0) + 1
            else:
                row = self.substitutions.setdefault(ref, {})
                row[hyp] = row.get(hyp, 0) + 1
        self.utterances += 1
        self.ref_units += ref_length
        self.utterance_rates.append(round(errors / max(1, ref_length), 4))

    def summary(self) -> str:
        sub, dele, ins = self.shares()
        return (
            f"{self.utterances} utterances, {self.ref_units} reference characters, error rate "
            f"{100 * self.error_rate:.2f}% ({self.substitution_count} sub / {self.deletion_count} del / "
            f"{self.insertion_count} ins = {sub:.2f}/{dele:.2f}/{ins:.2f}), "
            f"{sum(len(v) for v in self.substitutions.values())} distinct substitution pairs"
        )

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ErrorStats:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def measure_error_stats(paths: Sequence[str | os.PathLike]) -> ErrorStats:
    """Error statistics of a seed model from its dev decoding results (``recogs-dev-*.txt``
    or ``errs-dev-*.txt`` of ``less.bin.decode``), or a saved ``error_stats.json``.
    Test-set results are refused (:func:`refuse_test_results`)."""
    if not paths:
        raise ValueError("error statistics need at least one dev result file")
    stats = ErrorStats()
    for path in map(Path, paths):
        refuse_test_results(path)
        if path.suffix == ".json":
            saved = ErrorStats.from_json(json.loads(path.read_text(encoding="utf-8")))
            for source in saved.sources:
                refuse_test_results(source.get("path", ""))
            if len(paths) > 1:
                raise ValueError(
                    f"{path}: a saved error_stats.json is used alone, not with other files"
                )
            return saved
        alignments = read_result_alignments(path)
        for _, alignment in alignments:
            stats.add(alignment)
        stats.sources.append(
            {
                "path": str(path),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "utterances": len(alignments),
            }
        )
    return stats


class _Draw:
    """Draws keys in proportion to their counts (cumulative table + bisection)."""

    def __init__(self, counts: dict[str, float]) -> None:
        self.keys = sorted(counts)
        self.cumulative = list(itertools.accumulate(counts[key] for key in self.keys))

    def __bool__(self) -> bool:
        return bool(self.keys) and self.cumulative[-1] > 0

    def __call__(self, rng: random.Random) -> str:
        return self.keys[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


class SeedErrorSimulator(ErrorSimulator):
    """Corrupts sentences with the errors a seed recogniser was *measured* to make.

    Random similar-sounding substitutions at uniform rates teach a corrector errors the
    teacher does not make (and miss those it does: a weak seed mostly *deletes*). Here
    every draw follows :class:`ErrorStats`:

    * the sentence's error rate: one of the measured per-utterance rates (at most
      ``max_rate``), so clean sentences are as frequent as correct dev utterances;
    * where errors fall: a character's measured error rate, smoothed towards the overall
      one (``smoothing`` pseudo-occurrences), scales its chance;
    * what kind: insertion at the measured insertion share; otherwise substitution or
      deletion in the character's own (smoothed) proportions;
    * substitution ``c -> h``: a measured pair of ``c`` with weight ``n_c / (n_c +
      smoothing)``, else the back-off: a similar-sounding character (``confusions``:
      espeak-ng or pycorrector homophones) with chance ``similar``, else a character the
      seed was measured to output in substitutions (its bias towards frequent ones);
    * inserted characters: the measured insertions, smoothed with the inventory.

    With ``measured_only`` no back-off is used: a character without measured
    substitution pairs is never substituted (a substitution drawn there leaves it as it
    is), and only measured insertions are inserted; sentences then come out with fewer
    errors than the measured rates.
    """

    def __init__(
        self,
        chars: Sequence[str],
        stats: ErrorStats,
        confusions: dict[str, list[str]] | None = None,
        similar: float = 0.7,
        smoothing: float = 2.0,
        measured_only: bool = False,
    ) -> None:
        substitute, delete, _ = stats.shares()
        super().__init__(chars, confusions, substitute=substitute, delete=delete, similar=similar)
        if not stats.utterance_rates:
            raise ValueError("error statistics without utterances")
        self.stats, self.smoothing, self.measured_only = stats, smoothing, measured_only
        self.insert_share = stats.shares()[2]
        self.pairs = {ref: _Draw(hyps) for ref, hyps in stats.substitutions.items()}
        self.pair_counts = {ref: sum(hyps.values()) for ref, hyps in stats.substitutions.items()}
        output: Counter[str] = Counter()
        for hyps in stats.substitutions.values():
            output.update(hyps)
        self.substituted = _Draw(dict(output)) if output else _Draw({ch: 1 for ch in self.chars})
        inserted = dict(stats.insertions)
        if not measured_only:
            for ch in self.chars:  # smoothing: every inventory character can be inserted
                inserted[ch] = inserted.get(ch, 0) + smoothing / len(self.chars)
        self.inserted = _Draw(inserted)
        self.overall = (stats.substitution_count + stats.deletion_count) / max(1, stats.ref_units)
        self.sub_given_ref_error = substitute / max(1e-9, substitute + delete)

    def draw_rate(self, max_rate: float, rng: random.Random) -> float:
        return min(max_rate, rng.choice(self.stats.utterance_rates))

    def _propensity(self, ch: str) -> float:
        """``ch``'s smoothed error rate relative to the overall rate (1 when nothing but
        insertions was measured)."""
        if self.overall <= 0.0:
            return 1.0
        errors = sum(self.stats.substitutions.get(ch, {}).values()) + self.stats.deletions.get(
            ch, 0
        )
        count = self.stats.ref_counts.get(ch, 0)
        rate = (errors + self.smoothing * self.overall) / (count + self.smoothing)
        return rate / self.overall

    def _substitute_share(self, ch: str) -> float:
        subs = self.pair_counts.get(ch, 0)
        dels = self.stats.deletions.get(ch, 0)
        return (subs + self.smoothing * self.sub_given_ref_error) / (subs + dels + self.smoothing)

    def _replacement(self, ch: str, rng: random.Random) -> str | None:
        count = self.pair_counts.get(ch, 0)
        if count and rng.random() < count / (
            count + (0.0 if self.measured_only else self.smoothing)
        ):
            return self.pairs[ch](rng)
        if self.measured_only:
            return None
        options = self.confusions.get(ch)
        if options and rng.random() < self.similar:
            return rng.choice(options)
        return self.substituted(rng)

    def corrupt(self, text: str, rate: float, rng: random.Random) -> str:
        if not text or rate <= 0.0:
            return text
        weights = [self._propensity(ch) for ch in text]
        scale = rate * len(text) / sum(weights)
        out = []
        for ch, weight in zip(text, weights):
            if rng.random() >= min(1.0, scale * weight):
                out.append(ch)
            elif rng.random() < self.insert_share:
                if not self.inserted:
                    out.append(ch)
                    continue
                extra = self.inserted(rng)
                out.extend((ch, extra) if rng.random() < 0.5 else (extra, ch))
            elif rng.random() < self._substitute_share(ch):
                replacement = self._replacement(ch, rng)
                out.append(ch if replacement is None else replacement)
            # else: deleted
        return "".join(out)


def pycorrector_confusions(chars: Iterable[str]) -> dict[str, list[str]]:
    """char -> same-pinyin characters (same tone first, then other tones) from the data
    files that the ``pycorrector`` package ships (Apache-2.0), limited to ``chars``.

    Only the pinyin lists are used: a recogniser confuses sounds, not strokes. The
    package is not imported (it pulls in heavy dependencies); its data file is read
    from the installed package: ``pip install --no-deps pycorrector`` is enough.
    """
    spec = importlib.util.find_spec("pycorrector")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "--confusions pycorrector needs the pycorrector package for its same-pinyin list: "
            "pip install --no-deps pycorrector"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "same_pinyin.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pycorrector's same-pinyin list is missing")
    inventory = set(chars)
    sets: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        ch = fields[0].strip()
        if ch not in inventory:
            continue
        seen, options = {ch}, []
        for group in fields[1:3]:
            for other in group.strip():
                if other in inventory and other not in seen:
                    seen.add(other)
                    options.append(other)
        sets[ch] = options
    return sets
