"""lhotse glue: manifest names, supervision targets, and input checks shared by the stages."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("less.data")


def manifest_path(manifest_dir: str | Path, corpus: str, kind: str, split: str) -> Path:
    """``<dir>/<corpus>_<kind>_<split>.jsonl.gz`` (kind: recordings, supervisions, cuts)."""
    return Path(manifest_dir) / f"{corpus}_{kind}_{split}.jsonl.gz"


def read_cuts(path: str | Path):
    """``CutSet.from_file`` that returns an empty CutSet for an empty file (lhotse gives None)."""
    from lhotse import CutSet

    if not Path(path).is_file():
        raise FileNotFoundError(f"cut set {path} not found")
    cuts = CutSet.from_file(path)
    return CutSet() if cuts is None else cuts


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
        raise ValueError(f"{where}: {len(bad)} supervision(s) with an empty transcript: {', '.join(bad[:10])}")
