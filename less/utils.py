"""Small helpers every stage uses: atomic outputs, logging, run metadata.

Every stage writes its outputs through :func:`atomic_path` (temp file in the same
directory, then ``os.replace``) so that a kill never leaves a half-written file
that a rerun would mistake for finished work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def _full_suffix(path: Path) -> str:
    """``.jsonl.gz`` for ``a.b.jsonl.gz``: lhotse and friends pick formats by it."""
    name = path.name
    for suffix in (".jsonl.gz", ".json.gz", ".tar.gz", ".txt.gz"):
        if name.endswith(suffix):
            return suffix
    return path.suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the final suffix (``.jsonl.gz`` etc.) so writers that
    choose the format from the extension behave as for the final name. On an
    exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = _full_suffix(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; outputs get the permissions a plain open() would give.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def save_cuts_atomic(cuts, path: str | os.PathLike) -> None:
    """Save a lhotse CutSet (or any manifest with ``to_file``) atomically."""
    with atomic_path(path) as tmp:
        cuts.to_file(tmp)


def str2bool(value: str) -> bool:
    """argparse type for ``true``/``false`` flags (the spelling run.sh passes)."""
    import argparse

    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to ``log_file`` (appending, so reruns keep history)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)


def environment_info() -> dict[str, str]:
    """Versions worth recording at the start of every training/decoding log."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("torch", "lhotse", "transformers", "sentencepiece", "numpy"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = "not installed"
    from less import __version__

    info["less"] = __version__
    return info


def done_marker(path: str | os.PathLike) -> Path:
    """The ``.done`` file beside an output directory/file that marks a finished step."""
    path = Path(path)
    return path.parent / f".{path.name}.done"
