"""Character n-gram LMs: interpolated Kneser-Ney estimation, ARPA files, backoff scoring.

Why our own estimator: the maintained packages the architecture names do not estimate
LMs — ``kaldilm`` converts an ARPA file to an FST (Kaldi's ``arpa2fst``) and ``kaldifst``
operates on FSTs; icefall itself ships its own Kneser-Ney script for this step. So the
counting and smoothing live here, and ``kaldilm`` checks and converts what we write
(``less.bin.train_ngram --fst-out``; the tests compare our scores with paths through the
``kaldilm`` FST).

Interpolated Kneser-Ney (Chen & Goodman's formulation, as SRILM's ``-interpolate -kndiscount``
with one discount per order)::

    p_n(w|h) = max(a_n(hw) - D_n, 0) / T(h) + gamma(h) p_{n-1}(w|h'),
    gamma(h) = D_n N1+(h .) / T(h),   T(h) = sum_w a_n(hw)

with ``a_N`` the raw counts of the highest order and, below it, continuation counts (the
number of distinct left neighbours; n-grams that start with ``<s>`` keep raw counts, as
nothing can precede them). ``D_n = n1 / (n1 + 2 n2)`` from the count-of-counts of ``a_n``.
The unigram level interpolates with the uniform distribution over the vocabulary
(``</s>`` and ``<unk>`` included, ``<s>`` excluded: it is never predicted), so every
symbol has a probability. An unseen history backs off with weight 1.

In ARPA form every listed n-gram carries the full interpolated probability and every
history its ``gamma`` as backoff weight, so the usual backoff rule reproduces the
interpolated model exactly; probabilities over ``V`` sum to one for every history.
"""

from __future__ import annotations

import argparse
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LOG10 = math.log(10.0)
NO_PROB = -99.0  # log10 probability ARPA files give <s>


@dataclass
class NgramLM:
    """An n-gram LM in ARPA terms: per order, n-gram -> log10 probability, history -> log10 backoff."""

    order: int
    log_probs: list[dict[tuple[str, ...], float]] = field(default_factory=list)  # index n-1
    log_backoffs: list[dict[tuple[str, ...], float]] = field(default_factory=list)

    @property
    def vocabulary(self) -> list[str]:
        """Symbols the LM predicts (``<s>`` excluded)."""
        return sorted(w for (w,) in self.log_probs[0] if w != BOS)


def sentence_units(text: str, lang: str) -> list[str]:
    """The LM's units of a text: characters for Mandarin (Latin words whole), words otherwise —
    the units error rates count, after the project's normalisation."""
    from less.data.text import scoring_units

    return scoring_units(text, lang)


def text_file_sentences(paths: Iterable[str | Path], lang: str) -> Iterator[list[str]]:
    """The units of every sentence of text files (one sentence a line) that has any."""
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                units = sentence_units(line, lang)
                if units:
                    yield units


def add_text_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--text FILE``, repeatable: text files for :func:`text_file_sentences`."""
    parser.add_argument("--text", type=Path, action="append", default=[], help=help_text)


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of every n-gram, n = 1..order, of ``<s> units </s>`` (index n-1)."""
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    counts = [Counter() for _ in range(order)]
    for units in sentences:
        for unit in units:
            if unit in (BOS, EOS) or not unit or any(ch.isspace() for ch in unit):
                raise ValueError(
                    f"unit {unit!r} cannot be an n-gram symbol (reserved or contains space)"
                )
        tokens = (BOS, *units, EOS)
        for n in range(1, order + 1):
            grams = counts[n - 1]
            for i in range(len(tokens) - n + 1):
                grams[tokens[i : i + n]] += 1
    return counts


def _modified_counts(raw: list[Counter]) -> list[Counter]:
    """Raw counts at the highest order; distinct left neighbours below it (raw for ``<s>...``)."""
    order = len(raw)
    modified = [Counter() for _ in range(order)]
    modified[order - 1] = Counter(raw[order - 1])
    for n in range(order - 1, 0, -1):
        left_types: Counter = Counter()
        for gram in raw[n]:  # (n+1)-grams
            left_types[gram[1:]] += 1
        current = modified[n - 1]
        for gram, count in raw[n - 1].items():
            current[gram] = count if gram[0] == BOS else left_types.get(gram, 0)
    modified[0].pop((BOS,), None)
    return modified


def _discount(counts: Counter) -> float:
    """Ney's absolute discount ``n1 / (n1 + 2 n2)``; 0.5 where the count-of-counts give none."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def train_kneser_ney(
    sentences: Iterable[Sequence[str]], order: int = 3, extra_vocabulary: Iterable[str] = ()
) -> NgramLM:
    """Interpolated Kneser-Ney LM of ``order`` over unit sequences (see the module docstring).

    ``extra_vocabulary``: symbols to give a (uniform-share) probability though unseen, e.g.
    every CTC token, so that no hypothesis falls back to ``<unk>`` for a known symbol.
    """
    raw = count_ngrams(sentences, order)
    if not raw[0]:
        raise ValueError("no text to train the n-gram LM on")
    modified = _modified_counts(raw)
    vocabulary = sorted({g[0] for g in modified[0]} | {EOS, UNK} | set(extra_vocabulary) - {BOS})
    discounts = [_discount(modified[n]) for n in range(order)]

    totals: list[dict[tuple[str, ...], float]] = []
    types: list[dict[tuple[str, ...], int]] = []
    for n in range(order):
        total: dict[tuple[str, ...], float] = defaultdict(float)
        kinds: dict[tuple[str, ...], int] = defaultdict(int)
        for gram, count in modified[n].items():
            if count > 0:
                total[gram[:-1]] += count
                kinds[gram[:-1]] += 1
        totals.append(total)
        types.append(kinds)

    def gamma(n: int, history: tuple[str, ...]) -> float:
        return discounts[n] * types[n][history] / totals[n][history]

    uniform = 1.0 / len(vocabulary)
    cache: dict[tuple[str, ...], float] = {}

    def prob(gram: tuple[str, ...]) -> float:
        """Interpolated p(gram[-1] | gram[:-1]) with the history already cut to what is seen."""
        if gram in cache:
            return cache[gram]
        n = len(gram) - 1
        history = gram[:-1]
        lower = prob(gram[1:]) if n > 0 else uniform
        if totals[n].get(history, 0.0) > 0:
            count = modified[n].get(gram, 0)
            value = max(count - discounts[n], 0.0) / totals[n][history] + gamma(n, history) * lower
        else:
            value = lower
        cache[gram] = value
        return value

    lm = NgramLM(order)
    for n in range(order):
        log_probs: dict[tuple[str, ...], float] = {}
        grams = (
            [g for g, c in modified[n].items() if c > 0] if n > 0 else [(w,) for w in vocabulary]
        )
        for gram in grams:
            log_probs[gram] = math.log10(prob(gram))
        if n == 0:
            log_probs[(BOS,)] = NO_PROB
        lm.log_probs.append(log_probs)
    for n in range(order - 1):
        lm.log_backoffs.append(
            {history: math.log10(gamma(n + 1, history)) for history in totals[n + 1]}
        )
    lm.log_backoffs.append({})
    return lm


def write_arpa(lm: NgramLM, path: str | Path) -> None:
    """The LM as an ARPA file (n-grams sorted, so equal LMs give equal files), atomically."""
    from less.utils import write_text_atomic

    lines = ["", "\\data\\"]
    lines += [f"ngram {n + 1}={len(lm.log_probs[n])}" for n in range(lm.order)]
    for n in range(lm.order):
        lines += ["", f"\\{n + 1}-grams:"]
        backoffs = lm.log_backoffs[n] if n < len(lm.log_backoffs) else {}
        for gram in sorted(lm.log_probs[n]):
            entry = f"{lm.log_probs[n][gram]:.7f}\t{' '.join(gram)}"
            if gram in backoffs:
                entry += f"\t{backoffs[gram]:.7f}"
            lines.append(entry)
    lines += ["", "\\end\\", ""]
    write_text_atomic(path, "\n".join(lines))


_NGRAM_COUNT = re.compile(r"ngram (\d+)\s*=\s*(\d+)")


def read_arpa(path: str | Path) -> NgramLM:
    """Parse an ARPA file (ours or any toolkit's) into an :class:`NgramLM`."""
    path = Path(path)
    expected: dict[int, int] = {}
    lm: NgramLM | None = None
    section = 0
    with open(path, encoding="utf-8") as f:
        for line_number, raw_line in enumerate(f, 1):
            line = raw_line.strip()
            if not line:
                continue
            if line == "\\data\\":
                section = 0
                continue
            if line == "\\end\\":
                break
            match = _NGRAM_COUNT.fullmatch(line)
            if match and section == 0:
                expected[int(match.group(1))] = int(match.group(2))
                continue
            header = re.fullmatch(r"\\(\d+)-grams:", line)
            if header:
                section = int(header.group(1))
                if lm is None:
                    if not expected:
                        raise ValueError(
                            f"{path}:{line_number}: n-gram section before the \\data\\ counts"
                        )
                    order = max(expected)
                    lm = NgramLM(order, [{} for _ in range(order)], [{} for _ in range(order)])
                continue
            if lm is None or section == 0:
                raise ValueError(
                    f"{path}:{line_number}: unexpected line before the n-gram sections: {line!r}"
                )
            parts = line.split()
            if len(parts) not in (section + 1, section + 2):
                raise ValueError(
                    f"{path}:{line_number}: expected {section} words, a log-probability and an "
                    f"optional backoff, got {line!r}"
                )
            gram = tuple(parts[1 : section + 1])
            lm.log_probs[section - 1][gram] = float(parts[0])
            if len(parts) == section + 2:
                lm.log_backoffs[section - 1][gram] = float(parts[-1])
    if lm is None:
        raise ValueError(f"{path}: no n-gram sections (not an ARPA file?)")
    for n, count in expected.items():
        if len(lm.log_probs[n - 1]) != count:
            raise ValueError(
                f"{path}: header says {count} {n}-grams, found {len(lm.log_probs[n - 1])}"
            )
    return lm


class NgramScorer:
    """``log p_ngram(units)`` in nats (``</s>`` included) under the ARPA backoff rule.

    Units the LM does not know score as ``<unk>`` (an error when the LM has none).
    Scores are cached per (history, unit): hypotheses of one utterance share most n-grams.
    """

    def __init__(self, lm: NgramLM):
        self.lm = lm
        self.unigrams = lm.log_probs[0]
        self._cache: dict[tuple[str, ...], float] = {}

    @classmethod
    def from_arpa(cls, path: str | Path) -> NgramScorer:
        return cls(read_arpa(path))

    def log10_prob(self, unit: str, history: Sequence[str]) -> float:
        """log10 p(unit | history) (history: the preceding symbols, ``<s>`` first)."""
        if (unit,) not in self.unigrams:
            if (UNK,) not in self.unigrams:
                raise KeyError(f"{unit!r} is not in the LM's vocabulary and the LM has no {UNK}")
            unit = UNK
        history = (
            tuple(UNK if (h,) not in self.unigrams else h for h in history[-(self.lm.order - 1) :])
            if self.lm.order > 1
            else ()
        )
        key = (*history, unit)
        if key in self._cache:
            return self._cache[key]
        backoff = 0.0
        context = history
        while True:
            gram = (*context, unit)
            value = self.lm.log_probs[len(gram) - 1].get(gram)
            if value is not None:
                result = backoff + value
                break
            backoff += self.lm.log_backoffs[len(context) - 1].get(context, 0.0)
            context = context[1:]
        self._cache[key] = result
        return result

    def log_prob(self, units: Sequence[str]) -> float:
        """Natural-log probability of the whole sentence ``<s> units </s>``."""
        history: list[str] = [BOS]
        total = 0.0
        for unit in (*units, EOS):
            total += self.log10_prob(unit, history)
            history.append(unit)
        return total * LOG10


def perplexity(scorer: NgramScorer, sentences: Iterable[Sequence[str]]) -> tuple[float, int]:
    """(per-symbol perplexity, symbols scored — ``</s>`` counted) of unit sequences."""
    total, count = 0.0, 0
    for units in sentences:
        total += scorer.log_prob(units)
        count += len(units) + 1
    return (math.exp(-total / count) if count else math.nan), count
