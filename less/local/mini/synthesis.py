"""Render planned utterances and long recordings to FLAC (runs inside worker processes).

A spec holds every decision already drawn by the planner (text, voice, rate, pitch,
noise type, SNR, room, gain, seed), so a worker's output depends on its spec alone:
same seed, same audio, whatever the number of jobs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from less.data import espeak
from less.utils import atomic_path

from . import augment

SAMPLE_RATE = espeak.SAMPLE_RATE
REFERENCE_LEVEL_DB = -25.0  # active speech power (dBFS) before any gain change
BABBLE_GAP_S = 0.2


@dataclass(frozen=True)
class VoiceSettings:
    voice: str  # espeak-ng voice name, e.g. "cmn+f3"
    rate: int  # words per minute
    pitch: int  # 0..100


@dataclass(frozen=True)
class WildCondition:
    noise_type: str  # white / pink / brown / babble
    snr_db: float
    gain_db: float
    room: augment.Room | None  # None: no reverberation
    babble_talkers: tuple[tuple[str, VoiceSettings], ...] = ()  # background sentences for babble
    babble_streams: int = 0  # talkers audible at once

    def describe(self) -> dict:
        return {
            "noise_type": self.noise_type,
            "snr_db": round(self.snr_db, 2),
            "gain_db": round(self.gain_db, 2),
            "rt60": round(self.room.rt60, 3) if self.room else None,
        }


@dataclass(frozen=True)
class UtteranceSpec:
    audio_path: str
    text: str  # display text given to espeak
    voice: VoiceSettings
    seed: int
    condition: WildCondition | None = None  # None: clean
    level_db: float = REFERENCE_LEVEL_DB
    lead_s: float = 0.0  # silence (under the noise, if any) before the speech
    tail_s: float = 0.0  # and after it (after the reverberant tail)


@dataclass(frozen=True)
class LongRecordingSpec:
    audio_path: str
    utterances: tuple[tuple[str, VoiceSettings, float], ...]  # (display text, voice, level dB)
    pauses_s: tuple[float, ...]  # between consecutive utterances
    lead_s: float
    tail_s: float
    condition: WildCondition
    seed: int


@dataclass
class RenderResult:
    audio_path: str
    num_samples: int
    segments: list[tuple[float, float]] = field(
        default_factory=list
    )  # (start, duration) of each utterance


def _speak(text: str, voice: VoiceSettings, level_db: float) -> np.ndarray:
    return at_level(
        espeak.synthesize(text, voice.voice, rate=voice.rate, pitch=voice.pitch), level_db
    )


def at_level(audio: np.ndarray, level_db: float) -> np.ndarray:
    """Synthesised speech scaled to an active speech power of ``level_db`` dBFS."""
    power = augment.active_power(audio)
    return (audio * np.sqrt(10 ** (level_db / 10) / max(power, 1e-12))).astype(np.float32)


@functools.lru_cache(maxsize=64)
def _rir(room: augment.Room) -> np.ndarray:
    """Computed once per room and process, then reused by every utterance in that room."""
    return augment.room_impulse_response(room)


def direct_path_samples(room: augment.Room) -> int:
    """Delay of the direct sound in the room's (cached) impulse response: reverberation
    shifts the speech by this many samples (a few ms)."""
    return int(np.argmax(np.abs(_rir(room))))


def _noise(condition: WildCondition, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    if condition.noise_type != "babble":
        return augment.colored_noise(num_samples, condition.noise_type, rng)
    talkers = [_speak(text, voice, REFERENCE_LEVEL_DB) for text, voice in condition.babble_talkers]
    gap = np.zeros(int(BABBLE_GAP_S * SAMPLE_RATE), dtype=np.float32)
    streams = []
    for i in range(condition.babble_streams):
        order = talkers[i:] + talkers[:i]
        streams.append(np.concatenate([piece for talker in order for piece in (talker, gap)]))
    return augment.babble(streams, num_samples, rng)


def _finish(
    speech: np.ndarray,
    speech_power: float,
    condition: WildCondition | None,
    rng: np.random.Generator,
) -> np.ndarray:
    if condition is None:
        return augment.apply_gain(speech, 0.0)[0]
    noise = augment.scale_noise_to_snr(
        _noise(condition, len(speech), rng), speech_power, condition.snr_db
    )
    return augment.apply_gain(speech + noise, condition.gain_db)[0]


def lead_samples(spec: UtteranceSpec) -> int:
    """Samples of silence :func:`utterance_audio` puts before the speech."""
    return int(round(spec.lead_s * SAMPLE_RATE))


def write_flac(path: str | Path, audio: np.ndarray) -> None:
    import soundfile

    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def render_utterance(spec: UtteranceSpec) -> RenderResult:
    """One segmented utterance: clean, or reverberated + noisy + gain-changed, with
    ``lead_s`` / ``tail_s`` of silence around the speech (as a recorded utterance has)."""
    audio = utterance_audio(spec)
    write_flac(spec.audio_path, audio)
    return RenderResult(spec.audio_path, len(audio), [(0.0, len(audio) / SAMPLE_RATE)])


def utterance_audio(spec: UtteranceSpec, speech: np.ndarray | None = None) -> np.ndarray:
    """The float audio :func:`render_utterance` writes. ``speech``: the dry speech at
    ``spec.level_db`` when the caller synthesised it already (phone alignments re-render an
    utterance from :func:`espeak.synthesize_with_phones`' audio, the same samples)."""
    rng = np.random.default_rng(spec.seed)
    if speech is None:
        speech = _speak(spec.text, spec.voice, spec.level_db)
    if spec.condition is not None and spec.condition.room is not None:
        speech = augment.reverberate(speech, _rir(spec.condition.room))
    power = augment.active_power(speech)
    if spec.lead_s > 0 or spec.tail_s > 0:
        lead = np.zeros(lead_samples(spec), dtype=np.float32)
        tail = np.zeros(int(round(spec.tail_s * SAMPLE_RATE)), dtype=np.float32)
        speech = np.concatenate([lead, speech, tail])
    return _finish(speech, power, spec.condition, rng)


def render_long_recording(spec: LongRecordingSpec) -> RenderResult:
    """Utterances separated by pauses in one room, with background noise throughout.

    Segment offsets are those of the dry (trimmed) speech, i.e. the true utterance
    boundaries; reverberant tails spill into the following pause as they would in a room.
    """
    rng = np.random.default_rng(spec.seed)
    rir = _rir(spec.condition.room) if spec.condition.room is not None else None
    pieces, segments, speech_powers = [], [], []
    cursor = int(spec.lead_s * SAMPLE_RATE)
    for index, (text, voice, level_db) in enumerate(spec.utterances):
        dry = _speak(text, voice, level_db)
        wet = augment.reverberate(dry, rir) if rir is not None else dry
        pieces.append((cursor, wet))
        segments.append((cursor / SAMPLE_RATE, len(dry) / SAMPLE_RATE))
        speech_powers.append(augment.active_power(wet))
        cursor += len(dry)
        if index < len(spec.pauses_s):
            cursor += int(spec.pauses_s[index] * SAMPLE_RATE)
    total = max(cursor + int(spec.tail_s * SAMPLE_RATE), max(start + len(w) for start, w in pieces))
    speech = np.zeros(total, dtype=np.float32)
    for start, wet in pieces:
        speech[start : start + len(wet)] += wet
    audio = _finish(speech, float(np.mean(speech_powers)), spec.condition, rng)
    write_flac(spec.audio_path, audio)
    return RenderResult(
        spec.audio_path, len(audio), [(round(s, 4), round(d, 4)) for s, d in segments]
    )


def render(spec: UtteranceSpec | LongRecordingSpec) -> RenderResult:
    """Worker entry point (module level so that multiprocessing can pickle it)."""
    if isinstance(spec, LongRecordingSpec):
        return render_long_recording(spec)
    return render_utterance(spec)
