"""A small noise corpus for training-time noise augmentation (the mini recipe's MUSAN).

icefall recipes mix MUSAN noise into training batches so that models trained on clean
speech survive noise. MUSAN cannot be downloaded here, so the mini corpus synthesises
its own: stationary noise with a random spectral slope (``1/f^alpha``, alpha in [0, 2.5],
from white through pink to brown and beyond) and a random low-frequency hum. Deliberately
*not* included: babble and reverberation — the in-the-wild sets keep conditions that no
augmentation shows the seed model, as real in-the-wild audio would.

Output: ``<out>/manifests/mini-noise_recordings.jsonl.gz`` and FLAC files under
``<out>/audio/mini-noise/``; deterministic for a seed; skipped when it exists.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from less.local.mini.augment import SAMPLE_RATE
from less.local.mini.plan import derive_seed
from less.utils import atomic_path, save_cuts_atomic

logger = logging.getLogger("less.local.mini")

NOISE_CORPUS = "mini-noise"
# Recordings of 10 s per profile; apart from the split sizes, so that corpora built before
# the noise set existed stay valid (their build record holds the split sizes).
NOISE_RECORDINGS = {"tiny": 3, "default": 40}


def sloped_noise(num_samples: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS stationary noise whose power spectrum falls as 1/f^alpha (above 20 Hz)."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.maximum(np.fft.rfftfreq(num_samples, d=1.0 / SAMPLE_RATE), 20.0)
    noise = np.fft.irfft(spectrum / freqs ** (alpha / 2.0), n=num_samples)
    noise -= noise.mean()
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-10)


def noise_recording(seed: int, index: int, duration: float) -> np.ndarray:
    rng = np.random.default_rng(derive_seed(seed, "noise", index))
    n = int(duration * SAMPLE_RATE)
    noise = sloped_noise(n, float(rng.uniform(0.0, 2.5)), rng)
    if rng.random() < 0.3:  # mains hum: a few harmonics of 50 or 60 Hz
        base = 50.0 if rng.random() < 0.5 else 60.0
        t = np.arange(n) / SAMPLE_RATE
        hum = sum(
            np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 5)
        )
        noise = noise + float(rng.uniform(0.2, 1.0)) * hum / np.sqrt(np.mean(hum**2))
    noise = noise / np.max(np.abs(noise)) * 0.5
    return noise.astype(np.float32)


def prepare_noise(out_dir: Path, seed: int, count: int, duration: float = 10.0) -> Path:
    """Write the noise corpus; returns its recording manifest."""
    from lhotse import Recording, RecordingSet

    manifest = Path(out_dir) / "manifests" / f"{NOISE_CORPUS}_recordings.jsonl.gz"
    if manifest.is_file():
        logger.info("%s exists: skipping the noise corpus", manifest)
        return manifest
    audio_dir = Path(out_dir) / "audio" / NOISE_CORPUS
    audio_dir.mkdir(parents=True, exist_ok=True)
    recordings = []
    for index in range(count):
        path = audio_dir / f"{NOISE_CORPUS}-{index:04d}.flac"
        with atomic_path(path) as tmp:
            sf.write(tmp, noise_recording(seed, index, duration), SAMPLE_RATE, format="FLAC")
        recordings.append(Recording.from_file(path, recording_id=path.stem))
    save_cuts_atomic(RecordingSet.from_recordings(recordings), manifest)
    logger.info(
        "noise corpus: %d recordings, %.1f min -> %s", count, count * duration / 60, manifest
    )
    return manifest
