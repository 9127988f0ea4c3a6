"""Small helpers every stage uses: atomic outputs, logging, run metadata.

Every stage writes its outputs through :func:`atomic_path` (temp file in the same
directory, then ``os.replace``) so that a kill never leaves a half-written file
that a rerun would mistake for finished work.

A SIGKILL (or power loss) in the middle of a write cannot run any cleanup, so it leaves
the temporary file behind (``.<name>.<host>-<pid>.<random>.tmp<suffix>``; a checkpoint is
hundreds of MB). The first atomic write into that directory in a later process removes
the ones whose writer is gone (:func:`remove_stale_temp_files_in`); a trainer can also
sweep its directory at start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"
logger = logging.getLogger(__name__)

# A temporary file whose writer cannot be checked (another host, or a name from before the
# writer's pid was in it) is stale once it has not changed for this long.
STALE_TEMP_SECONDS = 3600.0
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname().split(".")[0])[:32] or "host"


def _full_suffix(path: Path) -> str:
    """``.jsonl.gz`` for ``a.b.jsonl.gz``: lhotse and friends pick formats by it."""
    name = path.name
    for suffix in (".jsonl.gz", ".json.gz", ".tar.gz", ".txt.gz"):
        if name.endswith(suffix):
            return suffix
    return path.suffix


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process (another thread may be writing the same target)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _parse_temp_name(name: str) -> tuple[str, str | None] | None:
    """``(target, writer)`` of a temporary file name made by :func:`atomic_path`
    (``writer``: ``host-pid``, None in names from before it was recorded), or None."""
    if not name.startswith(".") or ".tmp" not in name:
        return None
    left, _, suffix = name[1:].rpartition(".tmp")
    head, _, random_part = left.rpartition(".")  # mkstemp's random part has no dot
    if not head or not random_part:
        return None
    owner = re.fullmatch(r"(.+)\.([A-Za-z0-9_]+-\d+)", head)
    if owner is not None and _full_suffix(Path(owner[1])) == suffix:
        return owner[1], owner[2]
    if _full_suffix(Path(head)) == suffix:
        return head, None
    return None


def _writer_gone(writer: str | None, entry: os.DirEntry) -> bool:
    """Whether the process that made a temporary file is gone: known for this host's pids;
    elsewhere (another host, an old name) when the file has not changed for a long time."""
    if writer is not None:
        host, _, pid = writer.rpartition("-")
        if host == _HOST:
            return not _pid_alive(int(pid))
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
    except FileNotFoundError:
        return False


def _remove_stale(directory: Path, target: str | None) -> list[Path]:
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        parsed = _parse_temp_name(entry.name)
        if parsed is None or (target is not None and parsed[0] != target):
            continue
        if not entry.is_file(follow_symlinks=False) or not _writer_gone(parsed[1], entry):
            continue
        with contextlib.suppress(FileNotFoundError):
            size = entry.stat(follow_symlinks=False).st_size
            os.unlink(entry.path)
            removed.append(Path(entry.path))
            logger.info(
                "removed %s (%.1f MB), left by an interrupted write of %s",
                entry.path,
                size / 1e6,
                parsed[0],
            )
    return removed


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left for ``path`` when their writer was
    killed: its process is gone (names with this host's pid), or for files written from
    another host or by an older version, unchanged for :data:`STALE_TEMP_SECONDS`. Files of
    writers still running are kept. Returns the removed files."""
    path = Path(path)
    return _remove_stale(path.parent, path.name)


def remove_stale_temp_files_in(directory: str | os.PathLike) -> list[Path]:
    """:func:`remove_stale_temp_files` for every target in ``directory`` (e.g. at a trainer's
    start: a checkpoint whose write was killed may never be written again)."""
    return _remove_stale(Path(directory), None)


_swept_dirs: set[str] = set()
_swept_lock = threading.Lock()


def _sweep_once(directory: Path) -> None:
    """Sweep a directory at the first atomic write into it in this process: one listing per
    directory, not one per file (stages write thousands of files into one directory), and it
    finds every temporary file left by earlier, killed processes, the target's included."""
    key = os.path.realpath(directory)
    with _swept_lock:
        if key in _swept_dirs:
            return
        _swept_dirs.add(key)
    remove_stale_temp_files_in(directory)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the final suffix (``.jsonl.gz`` etc.) so writers that
    choose the format from the extension behave as for the final name, and names its
    writer (host and pid) so that the files a killed writer left can be told from those
    being written: the first write into a directory in a process removes them
    (:func:`remove_stale_temp_files_in`), the target's own included. On an exception
    the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    suffix = _full_suffix(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent
    )
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


_OPTION_TYPES = {"int": int, "float": float, "str": str, "bool": str2bool}


def config_options(
    parser, config, prefix: str = "", choices: dict | None = None, **helps: str | None
) -> None:
    """Add one option per keyword to ``parser`` (an ArgumentParser or argument group).

    The keyword names a field of the dataclass instance ``config``; the option is
    ``--<prefix>-<field-with-dashes>`` (dest ``<prefix>_<field>``), its default the field's value
    in ``config`` and its type the field's annotation (int, float, str; bool as true/false;
    ``X | None`` as X), its help the keyword's value.  ``choices``: field -> allowed values.
    One declaration per option instead of a five-line ``add_argument`` each; options whose
    type is anything else are declared by hand.
    """
    import dataclasses

    annotations = {f.name: f.type for f in dataclasses.fields(config)}
    for name, help_text in helps.items():
        if name not in annotations:
            raise TypeError(f"{type(config).__name__} has no field {name!r}")
        annotation = annotations[name]
        annotation = annotation if isinstance(annotation, str) else annotation.__name__
        kind = _OPTION_TYPES.get(annotation.removesuffix(" | None"))
        if kind is None:
            raise TypeError(f"{name}: a {annotation} option is declared by hand")
        flag = "--" + "-".join(filter(None, [prefix, name.replace("_", "-")]))
        extra = {"choices": choices[name]} if choices and name in choices else {}
        parser.add_argument(flag, type=kind, default=getattr(config, name), help=help_text, **extra)


def config_from_args(config_class, args, **overrides):
    """An instance of the dataclass ``config_class`` whose fields take the value of the
    same-named attribute of ``args`` (an argparse Namespace, e.g. from :func:`config_options`)
    where it has one, then ``overrides``; other fields keep their defaults."""
    import dataclasses

    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_class)
        if hasattr(args, f.name)
    }
    return config_class(**(values | overrides))


def cli_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a ``python -m less.bin.*`` tool: its module docstring is the help."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


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


def already_done(output: str | os.PathLike, log: logging.Logger) -> bool:
    """Whether a step's output file exists already (said in ``log``): a rerun has nothing to do."""
    if Path(output).is_file():
        log.info("%s exists: nothing to do", output)
        return True
    return False


def read_progress(path: str | os.PathLike, log: logging.Logger) -> Iterator[dict[str, Any]]:
    """The entries of a step's progress file (one JSON object a line, appended as work is
    done; nothing when it does not exist). A line cut short by an interrupted run is skipped
    with a warning: its work is simply done again."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: ignoring a truncated line (interrupted run)", path)
                continue
            yield entry


def done_marker(path: str | os.PathLike) -> Path:
    """The ``.done`` file beside an output directory/file that marks a finished step."""
    path = Path(path)
    return path.parent / f".{path.name}.done"


def seed_everything(seed: int) -> None:
    """Seed every RNG a training run draws from: torch, Python ``random`` (the Zipformer's
    Balancer/Whiten/bypass decisions) and numpy, so two fresh runs with one seed agree."""
    import random

    import numpy as np
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def native_bf16_cpu() -> bool:
    """True when this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX), where bf16 autocast
    trains several times faster than fp32; elsewhere bf16 is emulated and slower."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str, device) -> str:
    """``auto`` -> ``bf16`` on a CPU with native bf16, else ``fp32`` (GPUs: pass bf16/fp16)."""
    if dtype != "auto":
        return dtype
    return "bf16" if getattr(device, "type", str(device)) == "cpu" and native_bf16_cpu() else "fp32"


class _LogLines:
    """A tqdm output stream for log files: each refresh becomes one line (no ``\\r``)."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, log_interval: float = 30.0, **kwargs):
    """``tqdm`` for every long stage: redraws in place on a terminal; into a log file (run.sh
    sends each task's stages to exp/log/run-<task>.log) a plain line every ``log_interval``
    seconds.  Never starts tqdm's monitor thread (it kept a Ctrl-C'd process alive)."""
    import sys

    from tqdm import tqdm

    tqdm.monitor_interval = 0
    stream = kwargs.pop("file", None) or sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        kwargs.setdefault("mininterval", log_interval)
        kwargs.setdefault("maxinterval", log_interval * 4)
        stream = _LogLines(stream)
    return tqdm(iterable, file=stream, **kwargs)
