"""Fake Fisher/Callhome Spanish: LDC SPHERE audio and transcripts + fisher-callhome-corpus files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.fake_corpora.audio import write_sphere


@dataclass
class ExpectedSegment:
    recording_id: str
    channel: int
    start: float
    end: float
    text: str  # normalised Spanish
    translation: str | list[str]  # normalised English reference(s)
    transcript_lines: list[int]


@dataclass
class FakeFisherCallhome:
    fisher_speech_dir: Path  # LDC2010S01 (SPHERE, μ-law)
    fisher_transcript_dir: Path  # LDC2010T04
    callhome_speech_dir: Path  # LDC96S35 (SPHERE, PCM 16-bit, upper-case names)
    callhome_transcript_dir: Path  # LDC96T17
    translation_dir: Path  # fisher-callhome-corpus clone
    segments: dict[str, dict[str, ExpectedSegment]]  # split -> supervision id -> expected
    dropped: dict[str, dict[str, str]]  # split -> supervision id -> reason
    audio: dict[str, np.ndarray] = field(
        repr=False
    )  # recording id -> int16 (frames, 2) before coding
    sph_paths: dict[str, Path] = field(default_factory=dict)  # recording id -> SPHERE file
    out_of_range: tuple[str, int] | None = None  # (mapping file, line number) if asked
    sampling_rate: int = 8000
    seconds: float = 8.0


FISHER_CONVERSATIONS = {
    "fisher_train": "20051009_182032_217_fsp",
    "fisher_dev": "20051017_180712_270_fsp",
    "fisher_dev2": "20051023_232057_325_fsp",
    "fisher_test": "20051028_180633_356_fsp",
}
CALLHOME_CONVERSATIONS = {
    "callhome_train": "sp_0100",
    "callhome_devtest": "sp_0897",
    "callhome_evltest": "sp_1292",
}

_TDF_HEADER = [
    "file;unicode\tchannel;int\tstart;float\tend;float\tspeaker;unicode\tspeakerType;unicode\t"
    "speakerDialect;unicode\ttranscript;unicode\tsection;int\tturn;int\tsegment;int\t"
    "sectionType;unicode\tsuType;unicode",
    ";;MM sectionTypes\t[u'report', u'nonreport']",
    ";;MM sectionBoundaries\t[0.0, 9999999.0]",
]
# channel, start, end, LDC transcript, what strip_markup.pl leaves
_FISHER_LINES = [
    (0, 0.20, 1.40, "Buenas tardes.", "Buenas tardes."),
    (1, 1.50, 2.60, "[laughter] Hola, ¿qué tal?", "Hola, ¿qué tal?"),
    (0, 2.70, 3.60, 'Me llamo <foreign lang="English"> Carmen </foreign>', "Me llamo Carmen"),
    (0, 3.70, 4.90, "y tengo 25 años", "y tengo 25 años"),
    (1, 5.00, 5.30, "((mm))", "mm"),
    (0, 5.40, 6.80, "{breath} vivo en Chicago.", "vivo en Chicago."),
    (1, 6.90, 7.80, "¡Qué bueno! Yo también +vivo+ allí", "¡Qué bueno! Yo también vivo allí"),
]
# LDC lines of each mapping line, normalised Spanish
_FISHER_MAPPING = [
    ([1], "buenas tardes"),
    ([2], "hola qué tal"),
    ([3, 4], "me llamo carmen y tengo veinticinco años"),
    ([5], "mm"),
    ([6], "vivo en chicago"),
    ([7], "qué bueno yo también vivo allí"),
]
# four English references per mapping line, and their normalised forms
_FISHER_ENGLISH = [
    (
        ["Good afternoon.", "Good afternoon!", "Afternoon.", "Good evening."],
        ["good afternoon", "good afternoon", "afternoon", "good evening"],
    ),
    (
        [
            "Hi, how are you?",
            "Hello, how's it going?",
            "Hi, what's up?",
            "Hello, how are you doing?",
        ],
        ["hi how are you", "hello how's it going", "hi what's up", "hello how are you doing"],
    ),
    (
        [
            "My name is Carmen and I am 25 years old.",
            "I'm Carmen, and I'm 25.",
            "My name's Carmen and I'm twenty-five.",
            "I am called Carmen and I am 25 years old.",
        ],
        [
            "my name is carmen and i am twenty five years old",
            "i'm carmen and i'm twenty five",
            "my name's carmen and i'm twenty five",
            "i am called carmen and i am twenty five years old",
        ],
    ),
    (["Mm.", "Hmm.", "Mhm.", "Mm-hmm."], ["mm", "hmm", "mhm", "mm hmm"]),
    (
        [
            "I live in Chicago.",
            "I live in Chicago!",
            "I'm living in Chicago.",
            "I reside in Chicago.",
        ],
        ["i live in chicago", "i live in chicago", "i'm living in chicago", "i reside in chicago"],
    ),
    (
        [
            "Great! I live there too.",
            "Good! I also live there.",
            "How nice! Me too, I live there.",
            "Great, I live there as well.",
        ],
        [
            "great i live there too",
            "good i also live there",
            "how nice me too i live there",
            "great i live there as well",
        ],
    ),
]
# start, end, speaker, LDC transcript (ISO-8859-1 on disk), what strip_markup.pl leaves
_CALLHOME_LINES = [
    ("0.50", "1.60", "A", "Hola, ¿cómo estás?", "Hola, ¿cómo estás?"),
    ("1.70", "2.90", "B", "Bien, {laugh} gracias.", "Bien, gracias."),
    ("3.00", "3.80", "A", "((No sé)) si [distortion] viene", "No sé si viene"),
    ("3.90", "4.60", "A", "mañana <English okay>", "mañana"),
    ("4.70", "6.20", "B", "%ah, el niño tiene 3 años", "%ah, el niño tiene 3 años"),
    ("6.30", "7.50", "A", "¡Qué bien! &Juan también", "¡Qué bien! &Juan también"),
]
_CALLHOME_MAPPING = [
    ([1], "hola cómo estás", "Hi, how are you?", "hi how are you"),
    ([2], "bien gracias", "Fine, thanks.", "fine thanks"),
    (
        [3, 4],
        "no sé si viene mañana",
        "I don't know if he's coming tomorrow.",
        "i don't know if he's coming tomorrow",
    ),
    (
        [5],
        "ah el niño tiene tres años",
        "Ah, the boy is 3 years old.",
        "ah the boy is three years old",
    ),
    ([6], "qué bien juan también", "How nice! Juan too.", "how nice juan too"),
]


def _conversation_audio(seed: int, seconds: float = 8.0) -> np.ndarray:
    """Two different channels, so a swapped channel shows in the samples."""
    frames = int(seconds * 8000)
    t = np.arange(frames) / 8000
    rng = np.random.default_rng(seed)
    side_a = 6000 * np.sin(2 * np.pi * 300 * t) + rng.standard_normal(frames) * 500
    side_b = 9000 * np.sin(2 * np.pi * 710 * t) + rng.standard_normal(frames) * 500
    return np.stack([side_a, side_b], axis=1).round().clip(-32000, 32000).astype(np.int16)


def _write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def make_fisher_callhome(
    root: str | Path, out_of_range_split: str | None = None
) -> FakeFisherCallhome:
    """LDC2010S01, LDC2010T04, LDC96S35, LDC96T17 and fisher-callhome-corpus below ``root``.

    One conversation per split. Fisher audio is 2-channel 8 kHz μ-law SPHERE, Callhome
    2-channel 8 kHz 16-bit PCM SPHERE with upper-case names (``SP_0897.SPH``, as on
    some LDC discs). Fisher dev/dev2/test get four English references, the other
    splits one. ``out_of_range_split`` appends a mapping line that points past the end
    of that split's transcript (with matching translation lines).
    """
    root = Path(root)
    fisher_speech = root / "LDC2010S01"
    fisher_transcripts = root / "LDC2010T04"
    callhome_speech = root / "LDC96S35"
    callhome_transcripts = root / "LDC96T17"
    translations = root / "fisher-callhome-corpus"
    ldc = translations / "corpus" / "ldc"
    segments: dict[str, dict[str, ExpectedSegment]] = {}
    dropped: dict[str, dict[str, str]] = {}
    audio = {}
    sph_paths = {}
    out_of_range = None

    for seed, (split, conversation) in enumerate(FISHER_CONVERSATIONS.items()):
        samples = _conversation_audio(seed)
        audio[conversation] = samples
        sph = fisher_speech / "data" / "speech" / f"{conversation}.sph"
        write_sphere(sph, samples, coding="ulaw")
        sph_paths[conversation] = sph
        tdf_lines = list(_TDF_HEADER)
        for segment_number, (channel, start, end, text, _) in enumerate(_FISHER_LINES):
            tdf_lines.append(
                "\t".join(
                    [
                        f"{conversation}.sph",
                        str(channel),
                        f"{start}",
                        f"{end}",
                        "Carmen" if channel == 0 else "Ricardo",
                        "female" if channel == 0 else "male",
                        "native",
                        text,
                        "0",
                        str(segment_number),
                        "0",
                        "nonreport",
                        "statement",
                    ]
                )
            )
        _write_lines(
            fisher_transcripts / "fisher_spa_tr" / "data" / "transcripts" / f"{conversation}.tdf",
            tdf_lines,
        )

        four_references = split != "fisher_train"
        mapping, es_lines = [], []
        segments[split], dropped[split] = {}, {}
        for (lines, spanish), (_, english_normalised) in zip(_FISHER_MAPPING, _FISHER_ENGLISH):
            mapping.append(f"{conversation} {'_'.join(map(str, lines))}")
            es_lines.append(" ".join(_FISHER_LINES[n - 1][4] for n in lines))
            first, last = _FISHER_LINES[lines[0] - 1], _FISHER_LINES[lines[-1] - 1]
            side = "AB"[first[0]]
            sup_id = f"{conversation}-{side}-{lines[0]:04d}"
            if split == "fisher_train" and last[2] - first[1] < 0.5:
                dropped[split][sup_id] = "shorter than 0.5 s"
                continue
            segments[split][sup_id] = ExpectedSegment(
                recording_id=conversation,
                channel=first[0],
                start=first[1],
                end=last[2],
                text=spanish,
                translation=list(english_normalised) if four_references else english_normalised[0],
                transcript_lines=list(lines),
            )
        english_files = (
            {f"{split}.en.{k}": [refs[k] for refs, _ in _FISHER_ENGLISH] for k in range(4)}
            if four_references
            else {f"{split}.en": [refs[0] for refs, _ in _FISHER_ENGLISH]}
        )
        if split == out_of_range_split:
            mapping.append(f"{conversation} {len(_FISHER_LINES) + 5}")
            out_of_range = (str(translations / "mapping" / split), len(mapping))
            english_files = {
                name: lines + ["Out of range."] for name, lines in english_files.items()
            }
            es_lines.append("fuera")
        _write_lines(translations / "mapping" / split, mapping)
        _write_lines(ldc / f"{split}.es", es_lines)
        for name, lines in english_files.items():
            _write_lines(ldc / name, lines)

    callhome_parts = {
        "callhome_train": "TRAIN",
        "callhome_devtest": "DEVTEST",
        "callhome_evltest": "EVLTEST",
    }
    for seed, (split, conversation) in enumerate(CALLHOME_CONVERSATIONS.items(), start=10):
        samples = _conversation_audio(seed)
        audio[conversation] = samples
        sph = (
            callhome_speech
            / "CALLHOME"
            / "SPANISH"
            / "SPEECH"
            / callhome_parts[split]
            / f"{conversation.upper()}.SPH"
        )
        write_sphere(sph, samples, coding="pcm", byte_format="01")
        sph_paths[conversation] = sph
        part = callhome_parts[split].lower()
        txt = (
            callhome_transcripts
            / "callhome_spanish_trans_970711"
            / "transcrp"
            / part
            / f"{conversation}.txt"
        )
        _write_lines(
            txt, [f"{s} {e} {spk}: {text}" for s, e, spk, text, _ in _CALLHOME_LINES], "iso-8859-1"
        )
        mapping, es_lines, english = [], [], []
        segments[split], dropped[split] = {}, {}
        for lines, spanish, english_raw, english_normalised in _CALLHOME_MAPPING:
            mapping.append(f"{conversation} {'_'.join(map(str, lines))}")
            es_lines.append(" ".join(_CALLHOME_LINES[n - 1][4] for n in lines))
            english.append(english_raw)
            first, last = _CALLHOME_LINES[lines[0] - 1], _CALLHOME_LINES[lines[-1] - 1]
            channel = "AB".index(first[2])
            sup_id = f"{conversation}-{first[2]}-{lines[0]:04d}"
            segments[split][sup_id] = ExpectedSegment(
                recording_id=conversation,
                channel=channel,
                start=float(first[0]),
                end=float(last[1]),
                text=spanish,
                translation=english_normalised,
                transcript_lines=list(lines),
            )
        if split == out_of_range_split:
            mapping.append(f"{conversation} {len(_CALLHOME_LINES) + 1}")
            out_of_range = (str(translations / "mapping" / split), len(mapping))
            english.append("Out of range.")
            es_lines.append("fuera")
        _write_lines(translations / "mapping" / split, mapping)
        _write_lines(ldc / f"{split}.es", es_lines)
        _write_lines(ldc / f"{split}.en", english)

    return FakeFisherCallhome(
        fisher_speech_dir=fisher_speech,
        fisher_transcript_dir=fisher_transcripts,
        callhome_speech_dir=callhome_speech,
        callhome_transcript_dir=callhome_transcripts,
        translation_dir=translations,
        segments=segments,
        dropped=dropped,
        audio=audio,
        sph_paths=sph_paths,
        out_of_range=out_of_range,
    )
