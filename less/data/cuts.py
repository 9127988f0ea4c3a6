"""lhotse glue: manifest names, supervision targets, and input checks shared by the stages.

Manifests are read through :func:`read_cuts`, :func:`read_manifest` and
:func:`iter_manifest`: lhotse raises a bare ``UnicodeDecodeError`` (or a JSON or gzip
error) without the file's name for a transcript that is not UTF-8 or a truncated file;
these raise :class:`ManifestError` naming the file, the line and the item id instead.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("less.data")


class ManifestError(ValueError):
    """A manifest (or text file) that cannot be read; the message names the file and line."""


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _item_id(line: bytes) -> str:
    """The ``"id"`` of a JSON line whose bytes may not be UTF-8 (for the message), or ''."""
    try:
        value = json.loads(line.decode("utf-8", errors="replace"))
    except ValueError:
        return ""
    return (
        f" (id {value['id']!r})"
        if isinstance(value, dict) and isinstance(value.get("id"), str)
        else ""
    )


def utf8_problem(path: str | os.PathLike, data: bytes | None = None) -> str:
    """Where ``path`` (or its bytes ``data``) stops being UTF-8: ``"line N (id ...): byte 0xf1 ..."``."""
    path = Path(path)
    try:
        lines = data.split(b"\n") if data is not None else None
        if lines is None:
            with _open_binary(path) as f:
                lines = f.read().split(b"\n")
    except (OSError, EOFError, zlib.error):
        return "somewhere"
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = line[error.start : error.end]
            latin1 = line[max(0, error.start - 12) : error.end + 12].decode(
                "latin-1", errors="replace"
            )
            return (
                f"line {number}{_item_id(line)}: byte {' '.join(f'0x{b:02x}' for b in bad)} at column "
                f"{error.start + 1} is not UTF-8 (read as Latin-1: {latin1.strip()!r})"
            )
    return "somewhere"


def _first_bad_json_line(path: Path) -> int | None:
    with contextlib.suppress(OSError, EOFError, zlib.error), _open_binary(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                json.loads(line.decode("utf-8", errors="replace"))
            except ValueError:
                return number
    return None


@contextlib.contextmanager
def manifest_errors(path: str | os.PathLike, what: str = "manifest") -> Iterator[None]:
    """Turn the decoding errors lhotse raises while reading ``path`` into a :class:`ManifestError`
    that names the file, the line and what to do."""
    path = Path(path)
    try:
        yield
    except UnicodeDecodeError:
        raise ManifestError(
            f"{what} {path}: {utf8_problem(path)}. Manifests must be UTF-8: convert the transcripts (e.g. "
            f"iconv -f latin1 -t utf-8) and prepare the manifest again"
        ) from None
    except json.JSONDecodeError as error:
        line = _first_bad_json_line(path)
        where = f"line {line}" if line is not None else "a line"
        raise ManifestError(
            f"{what} {path}: {where} is not valid JSON ({error.msg}); was the file cut short "
            "by a crash? Prepare it again"
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ManifestError(
            f"{what} {path}: truncated or corrupt gzip file ({error}); prepare it again"
        ) from None


def read_manifest(path: str | Path, what: str = "manifest"):
    """``lhotse.load_manifest`` with errors that name the file (:func:`manifest_errors`)."""
    from lhotse import load_manifest

    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    with manifest_errors(path, what):
        return load_manifest(path)


def iter_manifest(path: str | Path, what: str = "manifest") -> Iterator[Any]:
    """Items of a manifest read lazily (``load_manifest_lazy``), errors naming the file."""
    from lhotse import load_manifest_lazy

    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    with manifest_errors(path, what):
        yield from load_manifest_lazy(path)


def read_text_utf8(path: str | os.PathLike, what: str = "file") -> str:
    """A text file that must be UTF-8 (corpus transcripts): an error naming file and line otherwise."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(
            f"{what} {path}: {utf8_problem(path, data)}; it must be UTF-8 (convert it, e.g. "
            "iconv -f latin1 -t utf-8)"
        ) from None


def manifest_path(manifest_dir: str | Path, corpus: str, kind: str, split: str) -> Path:
    """``<dir>/<corpus>_<kind>_<split>.jsonl.gz`` (kind: recordings, supervisions, cuts)."""
    return Path(manifest_dir) / f"{corpus}_{kind}_{split}.jsonl.gz"


def read_cuts(path: str | Path):
    """A whole cut set in memory (``CutSet.from_file(...).to_eager()``): an empty CutSet for an
    empty file (lhotse gives None), a :class:`ManifestError` naming the file for one it cannot
    decode. For stage inputs that are read whole anyway; ``CutSet.from_file`` alone is lazy
    (training sets), and its decoding errors surface wherever the cuts are iterated."""
    from lhotse import CutSet

    if not Path(path).is_file():
        raise FileNotFoundError(f"cut set {path} not found")
    with manifest_errors(path, "cut set"):
        cuts = CutSet.from_file(path)
        return CutSet() if cuts is None else cuts.to_eager()


def keep_cuts(cuts: Iterable[Any], keep: Callable[[Any], bool]):
    """An eager CutSet of the cuts for which ``keep`` holds, in their order. Unlike
    ``CutSet.filter(...).to_eager()`` this makes no lazy filter, which lhotse warns about when
    ``keep`` is a lambda (it could not be pickled into data-loader workers)."""
    from lhotse import CutSet

    return CutSet.from_cuts(cut for cut in cuts if keep(cut))


def iter_supervisions(items: Iterable[Any]) -> Iterator[Any]:
    """Supervisions of a SupervisionSet, or of every cut of a CutSet."""
    for item in items:
        if hasattr(item, "supervisions"):
            yield from item.supervisions
        else:
            yield item


def translation_references(sup: Any, lang: str = "en") -> list[str]:
    """All references of ``supervision.custom['translated_text'][lang]`` (str or list)."""
    custom = sup.custom or {}
    value = (custom.get("translated_text") or {}).get(lang)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def supervision_target(sup: Any, field: str, lang: str) -> str | None:
    """The training target of ``field``: ``text`` or the (first) ``translation`` reference."""
    if field == "text":
        return sup.text
    if field == "translation":
        refs = translation_references(sup, lang)
        return refs[0] if refs else None
    raise ValueError(f"unknown field {field!r} (text or translation)")


def audio_paths(recording: Any) -> list[str]:
    return [s.source for s in recording.sources if s.type == "file"]


def check_audio_files_exist(cuts: Iterable[Any]) -> None:
    """Fail before any work when audio files are missing, naming cut and file."""
    missing = []
    seen: set[str] = set()
    for cut in cuts:
        recording = getattr(cut, "recording", None)
        if recording is None or recording.id in seen:
            continue
        seen.add(recording.id)
        for path in audio_paths(recording):
            if not os.path.isfile(path):
                missing.append(f"cut {cut.id}: {path}")
    if missing:
        shown = "\n  ".join(missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise FileNotFoundError(f"{len(missing)} audio file(s) missing:\n  {shown}{more}")


def check_transcripts(cuts: Iterable[Any], where: str) -> None:
    """Supervisions with ``text`` set to an empty string are an error (None = unlabeled)."""
    bad = [
        f"cut {cut.id} (supervision {sup.id})"
        for cut in cuts
        for sup in cut.supervisions
        if sup.text is not None and not sup.text.strip()
    ]
    if bad:
        raise ValueError(
            f"{where}: {len(bad)} supervision(s) with an empty transcript: {', '.join(bad[:10])}"
        )
