"""Audio writers for the fake corpora: deterministic noise, G.711 μ-law, LDC-style SPHERE."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf


def noise(seconds: float, sampling_rate: int, seed: int, channels: int = 1) -> np.ndarray:
    """Deterministic int16 noise ``(frames, channels)``, quiet enough not to clip."""
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * sampling_rate))
    return (rng.standard_normal((frames, channels)) * 3000).clip(-32000, 32000).astype(np.int16)


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 -> G.711 μ-law codes (libsndfile's encoder), same shape, uint8."""
    buffer = io.BytesIO()
    sf.write(buffer, samples.reshape(samples.shape[0], -1), 8000, format="RAW", subtype="ULAW")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8).reshape(samples.shape)


def sphere_header(fields: list[tuple[str, str, object]], header_bytes: int = 1024) -> bytes:
    """A NIST_1A header padded to ``header_bytes``, fields in the given order."""
    lines = ["NIST_1A", f"{header_bytes:>7d}"]
    lines += [f"{name} {kind} {value}" for name, kind, value in fields]
    lines.append("end_head")
    text = ("\n".join(lines) + "\n").encode("ascii")
    assert len(text) <= header_bytes
    return text + b" " * (header_bytes - len(text))


def write_sphere(
    path: Path,
    samples: np.ndarray,
    sampling_rate: int = 8000,
    coding: str = "ulaw",
    byte_format: str | None = None,
    shorten: bool = False,
) -> None:
    """Write int16 ``(frames, channels)`` samples as an LDC-style SPHERE file.

    ``coding`` ``ulaw`` stores μ-law codes (byte format ``1`` unless given), ``pcm``
    16-bit samples (``01`` little endian unless given, ``10`` big endian). ``shorten``
    only writes the header such a file would have (and a shorten magic), not a
    decodable shorten stream: enough to check that the converter refuses it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, channels = samples.shape
    if coding == "ulaw":
        body = ulaw_encode(samples).tobytes()
        n_bytes, byte_format = 1, byte_format or "1"
    elif coding == "pcm":
        byte_format = byte_format or "01"
        body = samples.astype(">i2" if byte_format == "10" else "<i2").tobytes()
        n_bytes = 2
    else:
        raise ValueError(coding)
    sample_coding = f"{coding},embedded-shorten-v2.00" if shorten else coding
    if shorten:
        body = b"ajkg\x02" + bytes(64)
    header = sphere_header(
        [
            ("database_id", "-s7", "FISHER "),
            ("sample_count", "-i", frames),
            ("sample_n_bytes", "-i", n_bytes),
            ("channel_count", "-i", channels),
            ("sample_byte_format", f"-s{len(byte_format)}", byte_format),
            ("sample_rate", "-i", sampling_rate),
            ("sample_coding", f"-s{len(sample_coding)}", sample_coding),
        ]
    )
    path.write_bytes(header + body)
