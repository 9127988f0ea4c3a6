"""SpeechLM's phoneme-unit tokenizer, for Mandarin: one unit per syllable (with tone).

SpeechLM-P (Zhang et al., TASLP 2024) puts speech and text into one discrete unit space:

* speech: frame-level phone labels.  The authors decode their audio with a Kaldi GMM-HMM
  trained on the labelled part; here the seed model S (CTC) recognises an utterance and its
  CTC forced alignment of that hypothesis gives every character a segment
  (:mod:`less.ssl.alignment`); each 25 Hz encoder frame takes the unit of the segment its
  centre falls in, ``<sil>`` outside every segment;
* text: a lexicon maps each character to its unit (espeak-ng's ``cmn`` phonemes of the
  character, so homophones share a unit), then every unit is repeated to a speech-like
  duration: ``max(1, round(N(mean, std)))`` frames, as the authors' text pipeline does
  with a fixed N(5, 2.5) per phone at 50 Hz.  Here the mean and standard deviation are
  measured per unit from forced alignments of ``train_sup`` against its references (units
  seen fewer than ``min_count`` times take the pooled figure), and ``<sil>`` is put at both
  ends with the measured leading/trailing silence.

Ids: 0 is ``<sil>``, 1 ``<unk>`` (a character the lexicon cannot read), then the units in
sorted order.  Nothing here is deduplicated: consecutive frames of one unit stay repeated,
as in the authors' code.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from less.ssl.alignment import UtteranceAlignment, frame_times
from less.utils import write_json_atomic, write_text_atomic

SIL = "<sil>"
UNK = "<unk>"
SIL_ID = 0
UNK_ID = 1


@dataclass
class UnitLexicon:
    """character -> unit, and the unit inventory (ids: 0 ``<sil>``, 1 ``<unk>``, then sorted)."""

    char_units: dict[str, str]
    units: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.units:
            self.units = [SIL, UNK, *sorted(set(self.char_units.values()) - {SIL, UNK})]
        if self.units[:2] != [SIL, UNK]:
            raise ValueError(f"unit inventory must start with {SIL} {UNK}, got {self.units[:2]}")
        self.index = {u: i for i, u in enumerate(self.units)}
        missing = sorted(set(self.char_units.values()) - set(self.index))
        if missing:
            raise ValueError(f"lexicon units missing from the inventory: {missing[:5]}")

    @classmethod
    def build(cls, chars: Iterable[str], pronounce: Callable[[str], str]) -> UnitLexicon:
        """Lexicon of ``chars``; ``pronounce(char)`` gives its unit ('' when it cannot: ``<unk>``)."""
        char_units = {}
        for char in sorted(set(chars)):
            unit = pronounce(char).strip()
            char_units[char] = unit.replace(" ", "_") if unit else UNK
        return cls(char_units)

    def __len__(self) -> int:
        return len(self.units)

    def unit_of(self, char: str) -> int:
        return self.index[self.char_units.get(char, UNK)]

    def encode(self, text: str) -> list[int]:
        """Unit ids of the characters of ``text`` (spaces skipped)."""
        return [self.unit_of(c) for c in text if not c.isspace()]

    def save(self, out_dir: str | Path) -> None:
        out_dir = Path(out_dir)
        write_text_atomic(
            out_dir / "units.txt", "".join(f"{u} {i}\n" for i, u in enumerate(self.units))
        )
        write_text_atomic(
            out_dir / "lexicon.txt",
            "".join(f"{c} {u}\n" for c, u in sorted(self.char_units.items())),
        )

    @classmethod
    def load(cls, lang_dir: str | Path) -> UnitLexicon:
        lang_dir = Path(lang_dir)
        units = [
            line.rsplit(" ", 1)[0]
            for line in (lang_dir / "units.txt").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        char_units = dict(
            line.split(" ", 1)
            for line in (lang_dir / "lexicon.txt").read_text(encoding="utf-8").splitlines()
            if line.strip()
        )
        return cls(char_units, units)


def char_frames(alignment: UtteranceAlignment, num_frames: int) -> list[tuple[int, int]]:
    """[first, end) 25 Hz frames of each aligned character: the frames whose centre falls
    in its segment (possibly empty for a segment narrower than a frame)."""
    times = frame_times(num_frames, "25").tolist()
    spans = []
    j = 0
    for _, start, end in alignment.units:
        while j < num_frames and times[j] < start:
            j += 1
        first = j
        while j < num_frames and times[j] < end:
            j += 1
        spans.append((first, j))
    return spans


def frame_units(alignment: UtteranceAlignment, num_frames: int, lexicon: UnitLexicon) -> list[int]:
    """The unit of every 25 Hz encoder frame: the segment its centre falls in, else ``<sil>``."""
    labels = [SIL_ID] * num_frames
    for (char, _, _), (first, end) in zip(alignment.units, char_frames(alignment, num_frames)):
        labels[first:end] = [lexicon.unit_of(char)] * (end - first)
    return labels


def unit_runs(labels: Sequence[int]) -> list[tuple[int, int]]:
    """(unit, frames) of each run of equal consecutive labels."""
    runs: list[tuple[int, int]] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1] + 1)
        else:
            runs.append((label, 1))
    return runs


@dataclass
class DurationModel:
    """Frames per unit (25 Hz): a normal per unit, the pooled one for rare units, and the
    silence before and after an utterance."""

    mean: float
    std: float
    per_unit: dict[int, tuple[float, float]] = field(default_factory=dict)
    sil_mean: float = 0.0
    sil_std: float = 0.0

    @classmethod
    def fit(
        cls,
        alignments: Iterable[tuple[UtteranceAlignment, int]],
        lexicon: UnitLexicon,
        min_count: int = 5,
    ) -> DurationModel:
        """From (forced alignment, encoder frames) of reference transcripts: every
        character's frames, and the silence before its first and after its last character."""
        durations: dict[int, list[int]] = defaultdict(list)
        silences: list[int] = []
        for alignment, num_frames in alignments:
            spans = char_frames(alignment, num_frames)
            for (char, _, _), (first, end) in zip(alignment.units, spans):
                if end > first:
                    durations[lexicon.unit_of(char)].append(end - first)
            if spans:
                silences += [spans[0][0], num_frames - spans[-1][1]]
        pooled = [d for values in durations.values() for d in values]
        if not pooled:
            raise ValueError("no aligned characters to measure durations from")
        mean, std = _mean_std(pooled)
        per_unit = {u: _mean_std(v) for u, v in durations.items() if len(v) >= min_count}
        sil_mean, sil_std = _mean_std(silences) if silences else (0.0, 0.0)
        return cls(mean, std, per_unit, sil_mean, sil_std)

    def sample(self, unit: int, rng: random.Random) -> int:
        mean, std = self.per_unit.get(unit, (self.mean, self.std))
        return max(1, round(rng.gauss(mean, std)))

    def upsample(self, units: Sequence[int], rng: random.Random) -> list[int]:
        """Speech-like frame sequence of ``units``: each repeated a sampled number of frames,
        ``<sil>`` before and after (when the measured silence is not zero)."""
        out = [SIL_ID] * self._edge(rng)
        for unit in units:
            out.extend([unit] * self.sample(unit, rng))
        return out + [SIL_ID] * self._edge(rng)

    def _edge(self, rng: random.Random) -> int:
        return max(0, round(rng.gauss(self.sil_mean, self.sil_std))) if self.sil_mean > 0 else 0

    def to_dict(self) -> dict:
        return {
            "mean": self.mean,
            "std": self.std,
            "sil_mean": self.sil_mean,
            "sil_std": self.sil_std,
            "per_unit": {str(u): list(v) for u, v in sorted(self.per_unit.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> DurationModel:
        return cls(
            data["mean"],
            data["std"],
            {int(u): tuple(v) for u, v in data["per_unit"].items()},
            data["sil_mean"],
            data["sil_std"],
        )

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> DurationModel:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _mean_std(values: Sequence[int | float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
    return mean, math.sqrt(var)


def padded_labels(sequences: Sequence[Sequence[int]], length: int, pad: int = -100) -> torch.Tensor:
    """(B, length) long tensor of label sequences, ``pad`` beyond each one's end."""
    out = torch.full((len(sequences), length), pad, dtype=torch.long)
    for b, seq in enumerate(sequences):
        n = min(len(seq), length)
        out[b, :n] = torch.tensor(list(seq[:n]), dtype=torch.long)
    return out
