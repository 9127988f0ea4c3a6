"""Convert NIST SPHERE (``.sph``) audio to FLAC, once, before manifests are built.

Why: lhotse hands every ``.sph`` file to the external ``sph2pipe`` program, which
cannot be installed here (and is a C build for users). Fisher Spanish (LDC2010S01)
and Callhome Spanish (LDC96S35) are 2-channel 8 kHz telephone speech in SPHERE
files, so the recipes convert them to 2-channel 16-bit FLAC in a ``local`` step and
build recordings from the FLAC files.

The SPHERE header is parsed here, and the samples are decoded with numpy:

* ``pcm`` 16-bit, either byte order (``sample_byte_format`` ``01`` little endian,
  ``10`` big endian) and 8-bit;
* ``ulaw`` and ``alaw`` (G.711; decoded with the standard 16-bit expansion, the same
  values libsndfile produces), whatever ``sample_byte_format`` says — libsndfile
  refuses μ-law files whose header says ``01``/``10``, which LDC headers may do.

Shorten-compressed files (``sample_coding`` ``...,embedded-shorten-v2.00``) are not
decoded: every header is checked before anything is converted, and the run stops
with a message that says how to decompress the corpus with ``sph2pipe`` first.

Usage (resumable: existing FLAC files are skipped; writes are atomic)::

    python -m less.local.sph --in-dir /data/LDC2010S01 --out-dir download/fisher_flac \\
        [--num-jobs 2] [--log-file data/log/sph.log]

``--in-dir``   directory searched recursively for ``*.sph`` / ``*.SPH``
``--out-dir``  output root; ``<in-dir>/a/b/X.sph`` becomes ``<out-dir>/a/b/X.flac``
``--num-jobs`` worker processes (default 1)
"""

from __future__ import annotations

import argparse
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from less.utils import atomic_path, setup_logging

logger = logging.getLogger(__name__)

SPHERE_MAGIC = b"NIST_1A"


class SphereError(ValueError):
    """A SPHERE file that cannot be read (bad header, unsupported coding, truncated data)."""


class ShortenCompressedError(SphereError):
    """The file is shorten-compressed; it must be decompressed with sph2pipe first."""


@dataclass(frozen=True)
class SphereHeader:
    path: Path
    header_bytes: int
    sample_rate: int
    channel_count: int
    sample_n_bytes: int
    sample_count: int | None
    coding: str  # "pcm", "ulaw", "alaw"
    compression: str | None  # e.g. "embedded-shorten-v2.00"
    byte_format: str | None  # "01", "10", "1", ...

    @property
    def is_shorten(self) -> bool:
        return self.compression is not None and "shorten" in self.compression


def read_sphere_header(path: str | Path) -> SphereHeader:
    """Parse the ASCII header (``NIST_1A``, header size, ``name -type value`` lines, ``end_head``)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(1024)
        if not head.startswith(SPHERE_MAGIC):
            raise SphereError(f"{path}: not a NIST SPHERE file (no {SPHERE_MAGIC.decode()} magic)")
        lines = head.split(b"\n")
        try:
            header_bytes = int(lines[1].strip())
        except (IndexError, ValueError) as e:
            raise SphereError(f"{path}: bad SPHERE header size line {lines[1:2]!r}") from e
        if header_bytes > len(head):
            head += f.read(header_bytes - len(head))
    fields: dict[str, str] = {}
    text = head[:header_bytes].decode("latin-1")
    for line in text.split("\n")[2:]:
        line = line.strip()
        if line == "end_head":
            break
        if not line or line.startswith(";"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise SphereError(f"{path}: bad SPHERE header line {line!r}")
        name, kind, value = parts
        if kind.startswith("-s") and kind[2:].isdigit():
            value = value[: int(kind[2:])]
        fields[name] = value
    else:
        raise SphereError(f"{path}: SPHERE header has no end_head within {header_bytes} bytes")

    def integer(name: str, default: int | None = None) -> int | None:
        if name not in fields:
            return default
        try:
            return int(fields[name])
        except ValueError as e:
            raise SphereError(
                f"{path}: header field {name} is not an integer: {fields[name]!r}"
            ) from e

    coding_field = fields.get("sample_coding", "pcm").strip().lower()
    coding, _, compression = (part.strip() for part in coding_field.partition(","))
    coding = {"mu-law": "ulaw", "mulaw": "ulaw", "u-law": "ulaw", "a-law": "alaw"}.get(
        coding, coding
    )
    sample_rate = integer("sample_rate")
    channel_count = integer("channel_count", 1)
    if sample_rate is None:
        raise SphereError(f"{path}: SPHERE header has no sample_rate")
    default_n_bytes = 1 if coding in ("ulaw", "alaw") else 2
    return SphereHeader(
        path=path,
        header_bytes=header_bytes,
        sample_rate=sample_rate,
        channel_count=channel_count,
        sample_n_bytes=integer("sample_n_bytes", default_n_bytes),
        sample_count=integer("sample_count"),
        coding=coding,
        compression=compression or None,
        byte_format=fields.get("sample_byte_format"),
    )


def _ulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (codes & 0x70) >> 4
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_TO_INT16 = _ulaw_table()
ALAW_TO_INT16 = _alaw_table()


def shorten_message(header: SphereHeader, in_dir: Path | None = None) -> str:
    in_dir_text = str(in_dir) if in_dir is not None else "IN_DIR"
    return (
        f"{header.path} is shorten-compressed NIST SPHERE (sample_coding "
        f"'{header.coding},{header.compression}'); libsndfile and this converter cannot decode "
        "shorten. Decompress the corpus once with sph2pipe (build it with "
        "`lhotse install-sph2pipe` on a machine with a C compiler, or from LDC's sph2pipe_v2.5 "
        "sources), writing plain 16-bit SPHERE files, e.g.:\n"
        f"  cd {in_dir_text} && find . -iname '*.sph' | while read f; do "
        'mkdir -p "DECOMPRESSED/$(dirname "$f")"; sph2pipe -f sph -p "$f" "DECOMPRESSED/$f"; done\n'
        "then run this step again with --in-dir DECOMPRESSED."
    )


def read_sphere(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples as int16 ``(num_frames, num_channels)`` and the sampling rate."""
    header = read_sphere_header(path)
    if header.is_shorten:
        raise ShortenCompressedError(shorten_message(header))
    if header.compression:
        raise SphereError(f"{header.path}: unsupported SPHERE compression {header.compression!r}")
    raw = np.fromfile(header.path, dtype=np.uint8, offset=header.header_bytes)
    frame_bytes = header.sample_n_bytes * header.channel_count
    if header.sample_count is not None:
        needed = header.sample_count * frame_bytes
        if raw.size < needed:
            raise SphereError(
                f"{header.path}: truncated: header says {header.sample_count} samples x "
                f"{header.channel_count} channel(s) ({needed} bytes) but only {raw.size} bytes follow"
            )
        raw = raw[:needed]
    else:
        raw = raw[: raw.size - raw.size % frame_bytes]
    if header.coding in ("ulaw", "alaw"):
        if header.sample_n_bytes != 1:
            raise SphereError(
                f"{header.path}: {header.coding} with {header.sample_n_bytes} bytes/sample"
            )
        table = ULAW_TO_INT16 if header.coding == "ulaw" else ALAW_TO_INT16
        samples = table[raw]
    elif header.coding == "pcm" and header.sample_n_bytes == 2:
        big_endian = header.byte_format in ("10", "big")
        samples = raw.view(">i2" if big_endian else "<i2").astype(np.int16)
    elif header.coding == "pcm" and header.sample_n_bytes == 1:
        samples = (raw.view(np.int8).astype(np.int16) << 8).astype(np.int16)
    else:
        raise SphereError(
            f"{header.path}: unsupported SPHERE coding {header.coding!r} with "
            f"{header.sample_n_bytes} bytes/sample"
        )
    return samples.reshape(-1, header.channel_count), header.sample_rate


def flac_path_for(sph_path: Path, in_dir: Path, out_dir: Path) -> Path:
    return (out_dir / sph_path.relative_to(in_dir)).with_suffix(".flac")


def convert_file(sph_path: Path, flac_path: Path) -> float:
    """Convert one file atomically; return its duration in seconds."""
    samples, sample_rate = read_sphere(sph_path)
    with atomic_path(flac_path) as tmp:
        sf.write(tmp, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return samples.shape[0] / sample_rate


def _convert_job(paths: tuple[Path, Path]) -> float:
    return convert_file(*paths)


def find_sphere_files(in_dir: Path) -> list[Path]:
    return sorted(p for p in in_dir.rglob("*") if p.suffix.lower() == ".sph" and p.is_file())


def convert_dir(in_dir: str | Path, out_dir: str | Path, num_jobs: int = 1) -> list[Path]:
    """Convert every ``.sph`` below ``in_dir``; return the FLAC paths (existing ones included)."""
    in_dir = Path(in_dir)
    out_dir = Path(out_dir)
    if not in_dir.is_dir():
        raise FileNotFoundError(
            f"SPHERE input directory {in_dir} does not exist or is not a directory"
        )
    sph_paths = find_sphere_files(in_dir)
    if not sph_paths:
        raise FileNotFoundError(f"no .sph files found below {in_dir}")
    todo = [(p, flac_path_for(p, in_dir, out_dir)) for p in sph_paths]
    todo = [(src, dst) for src, dst in todo if not dst.is_file()]
    logger.info(
        "%d SPHERE files below %s, %d already converted, %d to convert",
        len(sph_paths),
        in_dir,
        len(sph_paths) - len(todo),
        len(todo),
    )
    if not todo:
        return [flac_path_for(p, in_dir, out_dir) for p in sph_paths]
    # Check every header first: a shorten file found after an hour of converting helps nobody.
    shortened = [h for h in (read_sphere_header(src) for src, _ in todo) if h.is_shorten]
    if shortened:
        raise ShortenCompressedError(
            f"{len(shortened)} of {len(todo)} files to convert are shorten-compressed; the first: "
            + shorten_message(shortened[0], in_dir)
        )
    seconds = 0.0
    with tqdm(total=len(todo), desc="sph -> flac", unit="file") as bar:
        if num_jobs <= 1:
            for job in todo:
                seconds += _convert_job(job)
                bar.update()
        else:
            with ProcessPoolExecutor(num_jobs) as pool:
                for duration in pool.map(_convert_job, todo, chunksize=4):
                    seconds += duration
                    bar.update()
    logger.info("converted %d files (%.2f h of audio) into %s", len(todo), seconds / 3600, out_dir)
    return [flac_path_for(p, in_dir, out_dir) for p in sph_paths]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Convert NIST SPHERE (.sph) audio to FLAC (resumable, atomic).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--in-dir", type=Path, required=True, help="directory searched recursively for .sph files"
    )
    parser.add_argument(
        "--out-dir", type=Path, required=True, help="output root; relative paths are kept"
    )
    parser.add_argument("--num-jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--log-file", type=Path, default=None, help="also log to this file")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_file)
    convert_dir(args.in_dir, args.out_dir, num_jobs=max(1, min(args.num_jobs, os.cpu_count() or 1)))


if __name__ == "__main__":
    main()
