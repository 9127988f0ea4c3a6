"""Readers for the LDC Spanish transcripts and the fisher-callhome-corpus split files.

Kept apart from ``fisher_callhome`` so the line-numbering rules, which decide
whether a translation lands on the right audio, sit in one short file. See
``less.local.fisher_callhome`` for the formats and the reasons behind each rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from less.data.cuts import read_text_utf8
from less.data.text import normalize

_REMOVED_CHARACTERS = re.compile(r"[()+*/#]")
_ANGLE_TAG = re.compile(r"<[^>]*>")
_CURLY_ANNOTATION = re.compile(r"\{[^}]*\}")
_SQUARE_ANNOTATION = re.compile(r"\[[^\]]*\]")
_CALLHOME_LINE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s+(\d+(?:\.\d*)?)\s+([^\s:]+):(.*)$")


def strip_markup(text: str) -> str:
    """Remove LDC annotation markup the way fisher-callhome-corpus' ``bin/strip_markup.pl`` does.

    ``( ) + * / #`` characters go (words inside ``((...))`` stay), then ``<...>`` tags
    (words between ``<foreign>`` tags stay), then ``{...}`` and ``[...]`` annotations
    with their content; whitespace is collapsed.
    """
    text = _REMOVED_CHARACTERS.sub("", text)
    text = _ANGLE_TAG.sub("", text)
    text = _CURLY_ANNOTATION.sub("", text)
    text = _SQUARE_ANNOTATION.sub("", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class TranscriptSegment:
    line_number: int
    start: float
    end: float
    channel: int  # 0 = side A, 1 = side B
    text: str  # markup stripped, not normalised


def _physical_lines(path: Path, encoding: str) -> list[str]:
    """Lines split on "\\n" only, as the shell tools count them (str.splitlines also splits
    on characters such as U+0085 that can occur inside ISO-8859-1 or UTF-8 text)."""
    # not UTF-8 where it should be: an error naming the file and line
    text = (
        read_text_utf8(path, "transcript")
        if encoding == "utf-8"
        else path.read_bytes().decode(encoding)
    )
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_fisher_transcript(path: Path) -> list[TranscriptSegment | str]:
    """Fisher ``.tdf`` lines numbered as fisher-callhome-corpus does (header lines removed).

    Entry ``i`` is transcript line ``i + 1``: a segment, or a string saying why the line
    is not one (only an error when a mapping refers to it).
    """
    entries: list[TranscriptSegment | str] = []
    for line in _physical_lines(path, "utf-8"):
        if "file;unicode" in line or ";;MM" in line:
            continue
        number = len(entries) + 1
        fields = line.split("\t")
        if len(fields) < 8:
            entries.append(f"{len(fields)} tab-separated field(s), expected at least 8")
            continue
        try:
            channel = int(fields[1])
            start, end = float(fields[2]), float(fields[3])
        except ValueError:
            entries.append(f"bad channel/start/end fields {fields[1:4]}")
            continue
        if channel not in (0, 1):
            entries.append(f"channel {channel}, expected 0 or 1")
            continue
        entries.append(TranscriptSegment(number, start, end, channel, strip_markup(fields[7])))
    return entries


def read_callhome_transcript(path: Path) -> list[TranscriptSegment | str]:
    """Callhome ``.txt`` (ISO-8859-1, ``<start> <end> <A|B>: <text>``); every line counts."""
    entries: list[TranscriptSegment | str] = []
    for number, line in enumerate(_physical_lines(path, "iso-8859-1"), start=1):
        match = _CALLHOME_LINE.match(line)
        if match is None:
            entries.append("not '<start> <end> <speaker>: <text>'")
            continue
        start, end, speaker, text = match.groups()
        side = speaker[:1].upper()
        if side not in ("A", "B"):
            entries.append(f"speaker {speaker!r}, expected A or B")
            continue
        entries.append(
            TranscriptSegment(
                number, float(start), float(end), "AB".index(side), strip_markup(text)
            )
        )
    return entries


@dataclass(frozen=True)
class MappingLine:
    line_number: int
    conversation: str
    transcript_lines: tuple[int, ...]


def read_mapping(path: Path) -> list[MappingLine]:
    """``mapping/<split>``: ``<conversation> <n>[_<n>...]`` per line."""
    entries = []
    for number, line in enumerate(_physical_lines(path, "utf-8"), start=1):
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            transcript_lines = tuple(int(n) for n in parts[1].split("_"))
        except ValueError:
            raise ValueError(
                f"{path}:{number}: expected '<conversation> <line>[_<line>...]', got {line!r}"
            ) from None
        entries.append(MappingLine(number, parts[0], transcript_lines))
    if not entries:
        raise ValueError(f"{path} is empty")
    return entries


def translation_files(ldc_dir: Path, split: str) -> list[Path]:
    """``<split>.en.0 .. .en.N`` when they exist (several references), else ``<split>.en``."""
    numbered = []
    while (ldc_dir / f"{split}.en.{len(numbered)}").is_file():
        numbered.append(ldc_dir / f"{split}.en.{len(numbered)}")
    if numbered:
        return numbered
    single = ldc_dir / f"{split}.en"
    if single.is_file():
        return [single]
    raise FileNotFoundError(
        f"no English references for {split}: neither {single} nor {ldc_dir / (split + '.en.0')} exists"
    )


def read_translations(
    ldc_dir: Path, split: str, expected: int, mapping_path: Path
) -> list[str | list[str]]:
    """Normalised English reference(s) per mapping line: a string, or a list with several."""
    references = []
    for path in translation_files(ldc_dir, split):
        lines = _physical_lines(path, "utf-8")
        if len(lines) != expected:
            raise ValueError(
                f"{path} has {len(lines)} lines but {mapping_path} has {expected}: "
                "they must correspond line by line"
            )
        references.append([normalize(line, "en") for line in lines])
    if len(references) == 1:
        return references[0]
    return [list(per_line) for per_line in zip(*references)]
