"""What the mini corpus contains: profiles, voices, texts per split, and render specs.

Planning is cheap and fully deterministic, so it is redone on every run (also for
splits that are skipped): the texts of one split depend on those planned before it,
because every sentence is used at most once per task. Randomness comes from
``random.Random`` / ``numpy`` generators seeded with :func:`derive_seed`, never from
global state.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import augment
from .grammar import Sentence, SentenceSampler
from .synthesis import (
    REFERENCE_LEVEL_DB,
    LongRecordingSpec,
    UtteranceSpec,
    VoiceSettings,
    WildCondition,
)

SPLITS = ("train_sup", "unsup_wild", "dev", "test_clean", "test_wild")
TEXT_ORDER = ("test_clean", "test_wild", "dev", "unsup_wild", "train_sup", "text_only")


@dataclass(frozen=True)
class TaskInfo:
    language: str  # spoken language: supervision.text / synthesizer language
    translation: str | None  # target language of speech translation


TASKS: dict[str, TaskInfo] = {"asr": TaskInfo("zh", None), "ast": TaskInfo("es", "en")}


@dataclass(frozen=True)
class ProfileSizes:
    """Split sizes per task. Utterances last ~3 s; a long recording of 8-12 utterances ~30-60 s."""

    train_sup: int  # read / clean utterances
    unsup_recordings: int  # long conversational / wild recordings
    utterances_per_recording: tuple[int, int]
    dev: int  # half read / clean, half conversational / wild
    test_clean: int
    test_wild: int
    text_only: int  # sentences of the text-only corpus (both domains)
    rooms_per_split: int


# Targets per task: tiny ~2 min of audio in all; default ~30 min supervised, ~1.5 h
# unlabeled, ~10 min per test set and for dev.
PROFILES: dict[str, ProfileSizes] = {
    "tiny": ProfileSizes(
        train_sup=10,
        unsup_recordings=2,
        utterances_per_recording=(4, 6),
        dev=4,
        test_clean=4,
        test_wild=4,
        text_only=200,
        rooms_per_split=2,
    ),
    "default": ProfileSizes(
        train_sup=580,
        unsup_recordings=128,
        utterances_per_recording=(8, 12),
        dev=200,
        test_clean=200,
        test_wild=205,
        text_only=20000,
        rooms_per_split=12,
    ),
}

CLEAN_VOICES: dict[str, tuple[str, ...]] = {"asr": ("cmn", "cmn+f2"), "ast": ("es", "es-419")}
WILD_BASE_VOICES: dict[str, tuple[str, ...]] = {"asr": ("cmn",), "ast": ("es", "es-419")}
WILD_VARIANTS = (
    tuple(f"f{i}" for i in range(1, 6))
    + tuple(f"m{i}" for i in range(1, 8))
    + ("klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6")
)
HELD_OUT_VARIANTS = ("f5", "m7", "klatt6")  # heard in test_wild only
CLEAN_RATE, CLEAN_PITCH = 170, 50
WILD_RATE_RANGE, WILD_PITCH_RANGE = (130, 210), (25, 75)
SNR_RANGE_DB, GAIN_RANGE_DB = (5.0, 20.0), (-12.0, 6.0)
NOISE_TYPES = ("white", "pink", "brown", "babble")
REVERB_PROBABILITY = 0.75
PAUSE_RANGE_S, EDGE_RANGE_S = (0.3, 2.5), (0.5, 2.0)


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from (seed, task, split, index, ...), stable across runs and platforms."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def wild_voices(task: str, held_out: bool) -> list[str]:
    variants = (
        HELD_OUT_VARIANTS if held_out else [v for v in WILD_VARIANTS if v not in HELD_OUT_VARIANTS]
    )
    return [f"{base}+{variant}" for base in WILD_BASE_VOICES[task] for variant in variants]


def corpus_name(task: str) -> str:
    return f"mini-{task}"


def text_keys(task: str, sentence: Sentence) -> tuple[str, ...]:
    """What must not repeat across splits: the transcript (and, for AST, the translation)."""
    return (sentence.zh,) if task == "asr" else (sentence.es, "en:" + sentence.en)


def display_text(task: str, sentence: Sentence) -> str:
    return sentence.zh_display if TASKS[task].language == "zh" else sentence.es_display


# ------------------------------------------------------------------------------ texts


def recording_sizes(seed: int, task: str, sizes: ProfileSizes) -> list[int]:
    rng = random.Random(derive_seed(seed, task, "unsup_wild", "layout"))
    return [rng.randint(*sizes.utterances_per_recording) for _ in range(sizes.unsup_recordings)]


def _draw_unique(sampler: SentenceSampler, count: int, task: str, used: set[str]) -> list[Sentence]:
    drawn: list[Sentence] = []
    attempts = 0
    while len(drawn) < count:
        attempts += 1
        if attempts > 100 * count + 1000:
            raise RuntimeError(
                f"cannot draw {count} new {sampler.domain} sentences: the grammar is too small"
            )
        sentence = sampler.sample()
        keys = text_keys(task, sentence)
        if any(k in used for k in keys):
            continue
        used.update(keys)
        drawn.append(sentence)
    return drawn


def plan_texts(seed: int, task: str, sizes: ProfileSizes) -> dict[str, list[Sentence]]:
    """Sentences of every split (and the text-only corpus), disjoint across all of them."""
    used: set[str] = set()

    def draw(split: str, domain: str, count: int) -> list[Sentence]:
        return _draw_unique(
            SentenceSampler(domain, derive_seed(seed, task, split, domain, "text")),
            count,
            task,
            used,
        )

    texts: dict[str, list[Sentence]] = {}
    for split in TEXT_ORDER:
        if split == "test_clean":
            texts[split] = draw(split, "read", sizes.test_clean)
        elif split == "test_wild":
            texts[split] = draw(split, "conversational", sizes.test_wild)
        elif split == "dev":
            half = sizes.dev // 2
            texts[split] = draw(split, "read", half) + draw(
                split, "conversational", sizes.dev - half
            )
        elif split == "unsup_wild":
            texts[split] = draw(split, "conversational", sum(recording_sizes(seed, task, sizes)))
        elif split == "train_sup":
            texts[split] = draw(split, "read", sizes.train_sup)
        else:
            half = sizes.text_only // 2
            read, conv = (
                draw(split, "read", half),
                draw(split, "conversational", sizes.text_only - half),
            )
            texts[split] = (
                [s for pair in zip(read, conv) for s in pair]
                + read[len(conv) :]
                + conv[len(read) :]
            )
    return texts


# ----------------------------------------------------------------------- conditions


@dataclass
class PlannedUtterance:
    """Everything a supervision needs besides the rendered audio."""

    utterance_id: str
    sentence: Sentence
    voice: VoiceSettings
    wild: WildCondition | None  # None: clean


@dataclass
class SplitPlan:
    split: str
    recording_ids: list[str] = field(default_factory=list)
    specs: list[UtteranceSpec | LongRecordingSpec] = field(default_factory=list)
    utterances: list[list[PlannedUtterance]] = field(default_factory=list)  # per recording


def _rooms(seed: int, task: str, split: str, count: int) -> list[augment.Room]:
    return [
        augment.random_room(np.random.default_rng(derive_seed(seed, task, split, "room", i)))
        for i in range(count)
    ]


def _wild_voice(rng: random.Random, voices: list[str]) -> VoiceSettings:
    return VoiceSettings(
        rng.choice(voices), rng.randint(*WILD_RATE_RANGE), rng.randint(*WILD_PITCH_RANGE)
    )


def _wild_condition(
    rng: random.Random,
    task: str,
    rooms: list[augment.Room],
    babble: SentenceSampler,
    voices: list[str],
    extra_talkers: int,
) -> WildCondition:
    noise_type = rng.choice(NOISE_TYPES)
    snr_db, gain_db = rng.uniform(*SNR_RANGE_DB), rng.uniform(*GAIN_RANGE_DB)
    room = rng.choice(rooms) if rng.random() < REVERB_PROBABILITY else None
    if noise_type != "babble":
        return WildCondition(noise_type, snr_db, gain_db, room)
    streams = rng.randint(3, 6)
    talkers = tuple(
        (display_text(task, babble.sample()), _wild_voice(rng, voices))
        for _ in range(streams + extra_talkers)
    )
    return WildCondition(noise_type, snr_db, gain_db, room, talkers, streams)


def audio_path(out_dir: Path, task: str, split: str, recording_id: str) -> str:
    return str(out_dir / "audio" / corpus_name(task) / split / f"{recording_id}.flac")


def plan_split(
    seed: int, task: str, split: str, sizes: ProfileSizes, sentences: list[Sentence], out_dir: Path
) -> SplitPlan:
    """Voices, conditions and output paths of every recording of one split."""
    plan = SplitPlan(split)
    rooms = _rooms(seed, task, split, sizes.rooms_per_split)
    seen_voices, held_out_voices = (
        wild_voices(task, held_out=False),
        wild_voices(task, held_out=True),
    )
    if split == "unsup_wild":
        cursor = 0
        for index, count in enumerate(recording_sizes(seed, task, sizes)):
            utt_seed = derive_seed(seed, task, split, index)
            rng = random.Random(utt_seed)
            babble = SentenceSampler("conversational", derive_seed(utt_seed, "babble"))
            recording_id = f"{corpus_name(task)}-{split}-{index:04d}"
            talkers = [_wild_voice(rng, seen_voices) for _ in range(rng.randint(1, min(3, count)))]
            condition = _wild_condition(rng, task, rooms, babble, seen_voices, extra_talkers=3)
            chosen = sentences[cursor : cursor + count]
            cursor += count
            voices = [rng.choice(talkers) for _ in chosen]
            levels = [REFERENCE_LEVEL_DB + rng.uniform(-3.0, 3.0) for _ in chosen]
            pauses = tuple(rng.uniform(*PAUSE_RANGE_S) for _ in chosen[1:])
            plan.recording_ids.append(recording_id)
            plan.specs.append(
                LongRecordingSpec(
                    audio_path(out_dir, task, split, recording_id),
                    tuple(
                        (display_text(task, s), v, lvl) for s, v, lvl in zip(chosen, voices, levels)
                    ),
                    pauses,
                    rng.uniform(*EDGE_RANGE_S),
                    rng.uniform(*EDGE_RANGE_S),
                    condition,
                    utt_seed,
                )
            )
            plan.utterances.append(
                [
                    PlannedUtterance(f"{recording_id}-{j:02d}", s, v, condition)
                    for j, (s, v) in enumerate(zip(chosen, voices))
                ]
            )
        return plan
    for index, sentence in enumerate(sentences):
        utt_seed = derive_seed(seed, task, split, index)
        rng = random.Random(utt_seed)
        recording_id = f"{corpus_name(task)}-{split}-{index:05d}"
        if sentence.domain == "read":
            voice, condition = (
                VoiceSettings(rng.choice(CLEAN_VOICES[task]), CLEAN_RATE, CLEAN_PITCH),
                None,
            )
        else:
            voices = held_out_voices if split == "test_wild" and rng.random() < 0.5 else seen_voices
            voice = _wild_voice(rng, voices)
            babble = SentenceSampler("conversational", derive_seed(utt_seed, "babble"))
            condition = _wild_condition(rng, task, rooms, babble, seen_voices, extra_talkers=0)
        plan.recording_ids.append(recording_id)
        plan.specs.append(
            UtteranceSpec(
                audio_path(out_dir, task, split, recording_id),
                display_text(task, sentence),
                voice,
                utt_seed,
                condition,
            )
        )
        plan.utterances.append([PlannedUtterance(recording_id, sentence, voice, condition)])
    return plan


def spoken_texts(plan: SplitPlan) -> list[str]:
    """Every text the synthesizer will read for this split (babble included)."""
    texts: list[str] = []
    for spec in plan.specs:
        condition = spec.condition
        texts.extend(
            [spec.text] if isinstance(spec, UtteranceSpec) else [t for t, _, _ in spec.utterances]
        )
        if condition is not None:
            texts.extend(t for t, _ in condition.babble_talkers)
    return texts
