"""Exact phone alignments of the mini corpus, from the synthesiser's own phoneme events.

ABX needs unit segments; a CTC forced alignment with a trained model guesses them (and
was uninformative on the wild test set). The mini corpus is synthetic, so the truth is
at hand: every utterance is re-planned from the corpus's build record
(:func:`less.local.mini.prepare.replan`), spoken again by espeak-ng with phoneme events
(:func:`less.data.espeak.synthesize_with_phones`, same samples as the corpus build) and
re-rendered exactly as :func:`less.local.mini.synthesis.render_utterance` renders it
(level, room, lead/tail silence, noise, gain). The re-rendered audio, quantised to PCM16
as the FLAC writer does, must equal the stored file sample for sample; otherwise the
phone times would describe some other audio, so :class:`AudioMismatch` names the
recording.

Phone times are relative to the recording (= the supervision: these splits hold one
utterance per recording, supervision id = recording id): the phone events of the dry
speech shifted by the lead silence and, in a room, by the direct-path delay of its
impulse response. Names are IPA without stress marks; pauses are gaps, not phones; see
:mod:`less.data.espeak`. The long recordings of ``unsup_wild`` are not handled.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from less.data import espeak
from less.ssl.alignment import UtteranceAlignment

from . import synthesis
from .plan import SPLITS, TASKS, PlannedUtterance
from .synthesis import SAMPLE_RATE, UtteranceSpec

log = logging.getLogger("less.local.mini.phones")

SINGLE_UTTERANCE_SPLITS = tuple(s for s in SPLITS if s != "unsup_wild")


class AudioMismatch(RuntimeError):
    """The re-synthesised audio of a recording differs from its stored file."""


@dataclass
class PhoneStats:
    utterances: int
    phones: int
    distinct: int
    mean_duration: float  # seconds

    def describe(self) -> str:
        return (
            f"{self.utterances} utterances, {self.phones} phones, {self.distinct} distinct, "
            f"mean phone duration {1000 * self.mean_duration:.1f} ms"
        )


def utterance_phones(spec: UtteranceSpec) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """The rendered float audio of one planned utterance and its phones on that audio's time
    line ``(name, start s, end s)``, clipped to the audio."""
    voice = spec.voice
    dry, phones = espeak.synthesize_with_phones(
        spec.text, voice.voice, rate=voice.rate, pitch=voice.pitch
    )
    audio = synthesis.utterance_audio(spec, synthesis.at_level(dry, spec.level_db))
    shift = synthesis.lead_samples(spec)
    if spec.condition is not None and spec.condition.room is not None:
        shift += synthesis.direct_path_samples(spec.condition.room)
    offset, duration = shift / SAMPLE_RATE, len(audio) / SAMPLE_RATE
    moved = [
        (name, min(start + offset, duration), min(end + offset, duration))
        for name, start, end in phones
    ]
    return audio, [(name, start, end) for name, start, end in moved if end > start]


def pcm16(audio: np.ndarray) -> np.ndarray:
    """``audio`` as :func:`synthesis.write_flac` stores it: through the same FLAC encoder (in
    memory), so the float-to-int16 conversion is libsndfile's own."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    buffer.seek(0)
    return soundfile.read(buffer, dtype="int16")[0]


def check_audio(recording_id: str, audio: np.ndarray, path: str | Path) -> None:
    """Raise :class:`AudioMismatch` unless ``audio`` is what ``path`` holds."""
    import soundfile

    if not Path(path).is_file():
        raise AudioMismatch(f"recording {recording_id}: no audio file {path}")
    stored, rate = soundfile.read(str(path), dtype="int16")
    rendered = pcm16(audio)
    if rate != SAMPLE_RATE or stored.shape != rendered.shape:
        raise AudioMismatch(
            f"recording {recording_id}: {path} holds {stored.shape[0]} samples at {rate} Hz, the "
            f"re-synthesis {rendered.shape[0]} at {SAMPLE_RATE} Hz (another corpus build or espeak-ng?)"
        )
    differ = np.flatnonzero(stored != rendered)
    if differ.size:
        raise AudioMismatch(
            f"recording {recording_id}: re-synthesised audio differs from {path} in {differ.size} of "
            f"{stored.size} samples (first at {differ[0] / SAMPLE_RATE:.3f} s); phone times would not fit it"
        )


def alignment_of(
    utterance: PlannedUtterance, spec: UtteranceSpec, verify: bool = True
) -> UtteranceAlignment:
    """One utterance's phone alignment, keyed by its supervision id."""
    audio, phones = utterance_phones(spec)
    if verify:
        check_audio(utterance.utterance_id, audio, spec.audio_path)
    return UtteranceAlignment(
        utterance.utterance_id, utterance.voice.voice, len(audio) / SAMPLE_RATE, phones
    )


def split_specs(
    data_dir: Path, task: str, split: str
) -> list[tuple[PlannedUtterance, UtteranceSpec]]:
    """The planned utterances of one split of an existing corpus, with their render specs."""
    from .prepare import replan

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    if split not in SINGLE_UTTERANCE_SPLITS:
        raise ValueError(
            f"split {split!r}: phone alignments are made for the single-utterance splits "
            f"{SINGLE_UTTERANCE_SPLITS} only (unsup_wild's long recordings are not handled)"
        )
    plan = replan(data_dir, task, (split,))[split]
    return [(utterances[0], spec) for utterances, spec in zip(plan.utterances, plan.specs)]


def split_alignments(
    data_dir: Path, task: str, split: str, verify: bool = True, progress: bool = True
) -> Iterator[UtteranceAlignment]:
    """Phone alignments of every utterance of a split, in plan order."""
    from less.utils import progress_bar

    pairs = split_specs(data_dir, task, split)
    iterator = progress_bar(pairs, desc=f"phones {task} {split}", unit="utt") if progress else pairs
    for utterance, spec in iterator:
        yield alignment_of(utterance, spec, verify)


def phone_stats(alignments: list[UtteranceAlignment]) -> PhoneStats:
    durations = [end - start for a in alignments for _, start, end in a.units]
    names = Counter(name for a in alignments for name, _, _ in a.units)
    mean = sum(durations) / len(durations) if durations else 0.0
    return PhoneStats(len(alignments), len(durations), len(names), mean)
