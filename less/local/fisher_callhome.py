"""Fisher and Callhome Spanish with English translations -> lhotse manifests (the AST corpus).

Inputs (each a directory; searched recursively, file names matched case-insensitively):

* ``--fisher-audio-dir``: FLAC files of Fisher Spanish speech (LDC2010S01,
  ``data/speech/<conv>.sph``) made by ``python -m less.local.sph``;
* ``--fisher-transcript-dir``: LDC2010T04 (``fisher_spa_tr/data/transcripts/<conv>.tdf``);
* ``--callhome-audio-dir``: FLAC files of Callhome Spanish speech (LDC96S35,
  ``callhome/spanish/speech/{train,devtest,evltest}/<conv>.sph``, or upper case);
* ``--callhome-transcript-dir``: LDC96T17 (``callhome_spanish_trans_970711/transcrp/
  {train,devtest,evltest}/<conv>.txt``);
* ``--translation-dir``: a clone of github.com/joshua-decoder/fisher-callhome-corpus:
  ``mapping/<split>`` and ``corpus/ldc/<split>.en`` (one reference) or
  ``corpus/ldc/<split>.en.{0,1,2,3}`` (Fisher dev/dev2/test: four references).

How the splits are defined (the fisher-callhome-corpus release, Post et al. 2013):
line *i* of ``mapping/<split>`` reads ``<conversation> <n>[_<n>...]`` and says that
line *i* of ``corpus/ldc/<split>.en*`` translates the LDC transcript lines ``n...``
of that conversation, joined with spaces (several LDC segments can make one
sentence). Transcript line numbers are 1-based and count, as the release's
``bin/build_{fisher,callhome}.sh`` do:

* Fisher ``.tdf`` (UTF-8, tab-separated ``file channel start end speaker speakerType
  speakerDialect transcript section turn segment ...``): every line except those
  containing ``file;unicode`` or ``;;MM`` (the three header lines);
* Callhome ``.txt`` (ISO-8859-1, ``<start> <end> <A|B>: <text>``): every line.

Each mapping line becomes one supervision: start of the earliest to end of the
latest merged LDC segment, on the channel of its speaker side (Fisher: the ``channel``
column, 0/1; Callhome: ``A:``/``B:`` -> 0/1; a line merging both sides takes the side
with more speech, counted in the log), ``speaker`` = ``<conv>-<A|B>``, ``language`` =
``"es"``, id ``<conv>-<A|B>-<first LDC line, 4 digits>``. ``text`` is the Spanish
transcript with the annotation markup stripped as the release's ``bin/strip_markup.pl``
does, then ``less.data.text.normalize(text, "es")``. Stripped: the characters
``( ) + * / #`` (so ``((dudoso))`` keeps its words), ``<...>`` tags (``<foreign
lang="English"> Audrey </foreign>`` keeps ``Audrey``), and ``{...}`` / ``[...]``
annotations with their content (``{laugh}``, ``[noise]``, ``[[comment]]``).
``custom["translated_text"]["en"]`` holds the English reference(s), normalised with
``normalize(text, "en")``: a string, or a list of 4 strings for Fisher dev/dev2/test;
``custom["transcript_lines"]`` the merged LDC line numbers.

Train splits drop segments with an empty Spanish text or translation and apply
``--min-duration/--max-duration`` (default 0.5/20.0 s: Fisher has many short
back-channel turns such as "aha" worth keeping). Evaluation splits keep every
mapping line so that BLEU uses the standard reference sets. Segment ends past the
end of the audio are clipped. When ``corpus/ldc/<split>.es`` exists (built by the
release's scripts from the LDC transcripts), every stripped transcript is compared
with it: mismatches are logged, and more than 5% stop the run (the line numbering
would then be wrong).

Bad input stops with the file and line: a mapping line outside its transcript, a
mapping line pointing at a line that is not a segment, translation files whose
line counts differ from the mapping, missing directories or files.

Outputs (atomic; finished splits are skipped)::

    <output-dir>/fisher-callhome_{recordings,supervisions}_<split>.jsonl.gz
    split in fisher_{train,dev,dev2,test}, callhome_{train,devtest,evltest}

Usage::

    python -m less.local.fisher_callhome \\
        --fisher-audio-dir download/fisher_flac --fisher-transcript-dir /data/LDC2010T04 \\
        --callhome-audio-dir download/callhome_flac --callhome-transcript-dir /data/LDC96T17 \\
        --translation-dir download/fisher-callhome-corpus --output-dir data/manifests \\
        [--splits fisher_train fisher_dev ...] [--min-duration 0.5] [--max-duration 20.0]
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from lhotse import Recording, SupervisionSegment
from lhotse.utils import add_durations
from tqdm import tqdm

from less.data.cuts import read_text_utf8
from less.data.text import normalize
from less.local.common import (
    DropCounter,
    DurationBounds,
    add_output_arguments,
    parse_preparer_args,
    preparer_parser,
    require_dir,
    require_file,
    split_is_done,
    write_split,
)
from less.local.ldc_spanish import (
    MappingLine,
    TranscriptSegment,
    read_callhome_transcript,
    read_fisher_transcript,
    read_mapping,
    read_translations,
)

logger = logging.getLogger(__name__)

CORPUS = "fisher-callhome"
FISHER_SPLITS = ("fisher_train", "fisher_dev", "fisher_dev2", "fisher_test")
CALLHOME_SPLITS = ("callhome_train", "callhome_devtest", "callhome_evltest")
SPLITS = FISHER_SPLITS + CALLHOME_SPLITS
TRAIN_SPLITS = frozenset({"fisher_train", "callhome_train"})
MAX_ES_MISMATCH_FRACTION = 0.05
SIDES = "AB"


class FileIndex:
    """Files below a directory by lower-cased stem, for one suffix (``.flac``, ``.tdf``...)."""

    def __init__(self, root: Path, suffix: str, what: str, hint: str = "") -> None:
        self.root, self.suffix, self.what, self.hint = root, suffix, what, hint
        self.paths: dict[str, list[Path]] = {}
        for path in sorted(root.rglob("*")):
            # Hidden names are temporary files of interrupted atomic writes.
            if path.suffix.lower() == suffix and not path.name.startswith(".") and path.is_file():
                self.paths.setdefault(path.stem.lower(), []).append(path)
        if not self.paths:
            raise FileNotFoundError(
                f"no {suffix} files found below {root} ({what}). {hint}".strip()
            )

    def get(self, stem: str) -> Path:
        found = self.paths.get(stem.lower(), [])
        if not found:
            raise FileNotFoundError(
                f"{self.what}: no {stem}{self.suffix} below {self.root}. {self.hint}".strip()
            )
        if len(found) > 1:
            raise FileExistsError(
                f"{self.what}: several files for {stem}: {[str(p) for p in found]}"
            )
        return found[0]


class Conversations:
    """Transcripts and recordings of one corpus (Fisher or Callhome), loaded on demand."""

    def __init__(
        self, audio_dir: Path, transcript_dir: Path, corpus_name: str, transcript_suffix: str
    ) -> None:
        sph_hint = (
            f"Convert the {corpus_name} .sph files first: python -m less.local.sph "
            f"--in-dir <LDC speech dir> --out-dir {audio_dir}"
        )
        self.corpus_name = corpus_name
        self.audio = FileIndex(audio_dir, ".flac", f"{corpus_name} audio", sph_hint)
        self.transcript_files = FileIndex(
            transcript_dir, transcript_suffix, f"{corpus_name} transcripts"
        )
        self.reader = (
            read_fisher_transcript if transcript_suffix == ".tdf" else read_callhome_transcript
        )
        self._transcripts: dict[str, tuple[Path, list[TranscriptSegment | str]]] = {}
        self._recordings: dict[str, Recording] = {}

    def transcript(self, conversation: str) -> tuple[Path, list[TranscriptSegment | str]]:
        if conversation not in self._transcripts:
            path = self.transcript_files.get(conversation)
            self._transcripts[conversation] = (path, self.reader(path))
        return self._transcripts[conversation]

    def recording(self, conversation: str) -> Recording:
        if conversation not in self._recordings:
            path = self.audio.get(conversation)
            recording = Recording.from_file(path, recording_id=conversation)
            if recording.num_channels != 2:
                raise ValueError(
                    f"{path}: {self.corpus_name} audio should have 2 channels (one per speaker "
                    f"side), found {recording.num_channels}"
                )
            self._recordings[conversation] = recording
        return self._recordings[conversation]


def merged_segments(
    entry: MappingLine, mapping_path: Path, conversations: Conversations
) -> tuple[Path, list[TranscriptSegment]]:
    """The LDC segments one mapping line refers to, with errors naming both files and lines."""
    transcript_path, lines = conversations.transcript(entry.conversation)
    segments = []
    for number in entry.transcript_lines:
        if not 1 <= number <= len(lines):
            raise ValueError(
                f"{mapping_path}:{entry.line_number}: transcript line {number} of {entry.conversation} "
                f"is out of range: {transcript_path} has {len(lines)} transcript lines"
            )
        item = lines[number - 1]
        if isinstance(item, str):
            raise ValueError(
                f"{mapping_path}:{entry.line_number}: refers to {transcript_path} line {number}, "
                f"which is not a transcript segment ({item})"
            )
        segments.append(item)
    return transcript_path, segments


def choose_channel(segments: list[TranscriptSegment]) -> tuple[int, bool]:
    """The speaker side of a merged line: the only one, or the one with more speech."""
    speech = Counter()
    for segment in segments:
        speech[segment.channel] += max(segment.end - segment.start, 0.0)
    channels = {segment.channel for segment in segments}
    if len(channels) == 1:
        return channels.pop(), False
    return max(sorted(channels), key=lambda c: speech[c]), True


def train_drop_reason(
    text: str, translation: str | list[str], duration: float, bounds: DurationBounds
) -> str | None:
    """Why a training segment is useless (nothing to learn from, or out of bounds), if it is."""
    if not text:
        return "empty Spanish transcript"
    if not any([translation] if isinstance(translation, str) else translation):
        return "empty translation"
    return bounds.reason_to_drop(duration)


def prepare_split(
    split: str,
    conversations: Conversations,
    translation_dir: Path,
    output_dir: Path,
    bounds: DurationBounds,
) -> None:
    mapping_path = require_file(
        translation_dir / "mapping" / split,
        f"fisher-callhome-corpus mapping of {split}",
        "Clone https://github.com/joshua-decoder/fisher-callhome-corpus as --translation-dir.",
    )
    mapping = read_mapping(mapping_path)
    translations = read_translations(
        translation_dir / "corpus" / "ldc", split, len(mapping), mapping_path
    )
    es_path = translation_dir / "corpus" / "ldc" / f"{split}.es"
    es_lines = read_es_lines(es_path, len(mapping)) if es_path.is_file() else None
    is_train = split in TRAIN_SPLITS
    drops = DropCounter(CORPUS, split)
    counts = Counter()
    es_mismatches: list[str] = []
    supervisions = []
    for entry, translation in zip(tqdm(mapping, desc=split, unit="line"), translations):
        transcript_path, segments = merged_segments(entry, mapping_path, conversations)
        spanish = " ".join(" ".join(segment.text for segment in segments).split())
        if es_lines is not None and spanish != es_lines[entry.line_number - 1]:
            es_mismatches.append(
                f"{mapping_path}:{entry.line_number} ({transcript_path}): ours {spanish!r}, "
                f"{es_path.name} {es_lines[entry.line_number - 1]!r}"
            )
        text = normalize(spanish, "es")
        channel, mixed = choose_channel(segments)
        counts["lines merging both speaker sides"] += mixed
        recording = conversations.recording(entry.conversation)
        start = min(segment.start for segment in segments)
        end = max(segment.end for segment in segments)
        if start >= recording.duration:
            drops.drop("starts after the end of its audio")
            continue
        if end > recording.duration:
            end = recording.duration
            counts["ends clipped to the end of the audio"] += 1
        duration = add_durations(end, -start, sampling_rate=recording.sampling_rate)
        if duration <= 0:
            drops.drop("non-positive duration")
            continue
        if is_train:
            reason = train_drop_reason(text, translation, duration, bounds)
            if reason is not None:
                drops.drop(reason)
                continue
        side = SIDES[channel]
        supervisions.append(
            SupervisionSegment(
                id=f"{entry.conversation}-{side}-{entry.transcript_lines[0]:04d}",
                recording_id=recording.id,
                start=start,
                duration=duration,
                channel=channel,
                text=text,
                language="es",
                speaker=f"{entry.conversation}-{side}",
                custom={
                    "translated_text": {"en": translation},
                    "transcript_lines": list(entry.transcript_lines),
                },
            )
        )
    for what, n in sorted(counts.items()):
        if n:
            logger.warning("%s %s: %d %s", CORPUS, split, n, what)
    check_es_mismatches(es_mismatches, len(mapping), es_path)
    drops.log()
    used = {s.recording_id for s in supervisions}
    write_split(
        (conversations.recording(c) for c in sorted(used)), supervisions, output_dir, CORPUS, split
    )


def read_es_lines(path: Path, expected: int) -> list[str]:
    lines = [" ".join(line.split()) for line in read_text_utf8(path, "Spanish text").split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != expected:
        raise ValueError(f"{path} has {len(lines)} lines but its mapping has {expected}")
    return lines


def check_es_mismatches(mismatches: list[str], total: int, es_path: Path) -> None:
    if not mismatches:
        return
    for example in mismatches[:3]:
        logger.warning("transcript differs from %s: %s", es_path.name, example)
    logger.warning("%d of %d lines differ from %s", len(mismatches), total, es_path)
    if len(mismatches) > MAX_ES_MISMATCH_FRACTION * total:
        raise ValueError(
            f"{len(mismatches)} of {total} transcripts differ from {es_path}: the transcript line "
            f"numbering does not match the mapping (first: {mismatches[0]})"
        )


def prepare_fisher_callhome(
    output_dir: str | Path,
    translation_dir: str | Path,
    fisher_audio_dir: str | Path | None = None,
    fisher_transcript_dir: str | Path | None = None,
    callhome_audio_dir: str | Path | None = None,
    callhome_transcript_dir: str | Path | None = None,
    splits: tuple[str, ...] = SPLITS,
    bounds: DurationBounds = DurationBounds(0.5, 20.0),
) -> None:
    """Write the manifests of ``splits`` (see the module docstring)."""
    unknown = [split for split in splits if split not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; known: {SPLITS}")
    output_dir = Path(output_dir)
    todo = [split for split in splits if not split_is_done(output_dir, CORPUS, split)]
    if not todo:
        logger.info("Fisher/Callhome manifests already in %s; nothing to do", output_dir)
        return
    translation_dir = require_dir(
        translation_dir,
        "fisher-callhome-corpus directory (--translation-dir)",
        "Clone https://github.com/joshua-decoder/fisher-callhome-corpus.",
    )
    corpora: dict[str, Conversations] = {}
    if any(split in FISHER_SPLITS for split in todo):
        corpora["fisher"] = Conversations(
            require_dir(fisher_audio_dir, "Fisher Spanish audio directory (--fisher-audio-dir)"),
            require_dir(fisher_transcript_dir, "Fisher Spanish transcript directory (LDC2010T04)"),
            "Fisher Spanish",
            ".tdf",
        )
    if any(split in CALLHOME_SPLITS for split in todo):
        corpora["callhome"] = Conversations(
            require_dir(
                callhome_audio_dir, "Callhome Spanish audio directory (--callhome-audio-dir)"
            ),
            require_dir(
                callhome_transcript_dir, "Callhome Spanish transcript directory (LDC96T17)"
            ),
            "Callhome Spanish",
            ".txt",
        )
    for split in todo:
        corpus = corpora["fisher" if split in FISHER_SPLITS else "callhome"]
        prepare_split(split, corpus, translation_dir, output_dir, bounds)


def get_parser() -> argparse.ArgumentParser:
    parser = preparer_parser(
        "Prepare Fisher/Callhome Spanish->English manifests with the standard "
        "fisher-callhome-corpus splits."
    )
    parser.add_argument(
        "--fisher-audio-dir",
        type=Path,
        default=None,
        help="FLAC files of LDC2010S01 (python -m less.local.sph)",
    )
    parser.add_argument(
        "--fisher-transcript-dir",
        type=Path,
        default=None,
        help="LDC2010T04 directory (searched for *.tdf)",
    )
    parser.add_argument(
        "--callhome-audio-dir",
        type=Path,
        default=None,
        help="FLAC files of LDC96S35 (python -m less.local.sph)",
    )
    parser.add_argument(
        "--callhome-transcript-dir",
        type=Path,
        default=None,
        help="LDC96T17 directory (searched for *.txt)",
    )
    parser.add_argument(
        "--translation-dir",
        type=Path,
        required=True,
        help="clone of github.com/joshua-decoder/fisher-callhome-corpus",
    )
    parser.add_argument(
        "--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to prepare"
    )
    add_output_arguments(parser, min_duration=0.5, max_duration=20.0, what="segments")
    return parser


def main(argv: list[str] | None = None) -> None:
    args, bounds = parse_preparer_args(get_parser(), argv)
    prepare_fisher_callhome(
        args.output_dir,
        args.translation_dir,
        fisher_audio_dir=args.fisher_audio_dir,
        fisher_transcript_dir=args.fisher_transcript_dir,
        callhome_audio_dir=args.callhome_audio_dir,
        callhome_transcript_dir=args.callhome_transcript_dir,
        splits=tuple(args.splits),
        bounds=bounds,
    )


if __name__ == "__main__":
    main()
