"""In-the-wild conditions for synthetic speech: noise, babble, reverberation, gain.

The mini corpus needs the gap that LESS bridges: clean read speech for supervision and
messy in-the-wild speech to pseudo-label. Everything here is a pure function of its
inputs and a ``numpy.random.Generator``, so a corpus is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
NOISE_COLORS = ("white", "pink", "brown")
_EPS = 1e-10


def colored_noise(num_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Stationary noise with a 1/f^alpha power spectrum (white 0, pink 1, brown 2), unit RMS."""
    if color not in NOISE_COLORS:
        raise ValueError(f"unknown noise colour {color!r}; expected one of {NOISE_COLORS}")
    white = rng.standard_normal(num_samples)
    if color == "white":
        noise = white
    else:
        alpha = 1.0 if color == "pink" else 2.0
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(num_samples, d=1.0 / SAMPLE_RATE)
        freqs[0] = freqs[1] if len(freqs) > 1 else 1.0
        # Below 20 Hz nothing is audible; flatten there so brown noise is not a DC drift.
        spectrum /= np.maximum(freqs, 20.0) ** (alpha / 2.0)
        noise = np.fft.irfft(spectrum, n=num_samples)
    noise = noise - noise.mean()
    return (noise / (np.sqrt(np.mean(noise**2)) + _EPS)).astype(np.float32)


def babble(streams: list[np.ndarray], num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Several talkers at once: each stream looped from a random offset, summed, unit RMS."""
    if not streams:
        raise ValueError("babble needs at least one talker")
    mix = np.zeros(num_samples, dtype=np.float64)
    for stream in streams:
        stream = stream / (np.sqrt(np.mean(stream**2)) + _EPS)
        repeats = int(np.ceil((num_samples + len(stream)) / len(stream)))
        looped = np.tile(stream, repeats)
        start = int(rng.integers(0, len(stream)))
        mix += looped[start : start + num_samples]
    mix -= mix.mean()
    return (mix / (np.sqrt(np.mean(mix**2)) + _EPS)).astype(np.float32)


def frame_powers(audio: np.ndarray, frame_s: float = 0.025, hop_s: float = 0.010) -> np.ndarray:
    frame, hop = int(frame_s * SAMPLE_RATE), int(hop_s * SAMPLE_RATE)
    if len(audio) < frame:
        return np.array([np.mean(audio.astype(np.float64) ** 2)])
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), frame)[::hop]
    return np.mean(frames**2, axis=1)


def active_power(audio: np.ndarray, floor_db: float = -35.0) -> float:
    """Mean power of the frames within ``floor_db`` of the loudest: speech power without pauses."""
    powers = frame_powers(audio)
    active = powers[powers >= powers.max() * 10 ** (floor_db / 10)]
    return float(active.mean()) if active.size else 0.0


def scale_noise_to_snr(noise: np.ndarray, speech_power: float, snr_db: float) -> np.ndarray:
    """``noise`` rescaled so that speech_power / noise power = ``snr_db``."""
    noise_power = float(np.mean(noise.astype(np.float64) ** 2)) + _EPS
    return (noise * np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))).astype(np.float32)


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix ``noise`` (same length) under ``speech`` at ``snr_db`` relative to active speech power."""
    if len(noise) != len(speech):
        raise ValueError(f"noise has {len(noise)} samples, speech {len(speech)}")
    return speech + scale_noise_to_snr(noise, active_power(speech), snr_db)


@dataclass(frozen=True)
class Room:
    """A shoebox room; its impulse response is computed once and reused for many utterances."""

    dimensions: tuple[float, float, float]
    rt60: float
    source: tuple[float, float, float]
    microphone: tuple[float, float, float]


def _random_point(
    rng: np.random.Generator, dims: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Somewhere 0.5 m from the walls, at a sitting or standing head height."""
    return (
        float(rng.uniform(0.5, dims[0] - 0.5)),
        float(rng.uniform(0.5, dims[1] - 0.5)),
        float(rng.uniform(1.0, 1.8)),
    )


def random_room(rng: np.random.Generator, rt60_range: tuple[float, float] = (0.2, 0.8)) -> Room:
    """A plausible room for the drawn RT60 (large enough that the walls can be that reflective)."""
    import pyroomacoustics as pra

    rt60 = float(rng.uniform(*rt60_range))
    for _ in range(100):
        dims = (
            float(rng.uniform(3.0, 10.0)),
            float(rng.uniform(3.0, 8.0)),
            float(rng.uniform(2.5, 4.0)),
        )
        try:
            pra.inverse_sabine(rt60, list(dims))
        except ValueError:
            continue
        source, microphone = _random_point(rng, dims), _random_point(rng, dims)
        if np.linalg.norm(np.subtract(source, microphone)) >= 0.7:
            return Room(dims, rt60, source, microphone)
    raise RuntimeError(f"could not find a room for RT60 {rt60:.2f} s")


def room_impulse_response(room: Room, max_order_cap: int = 40) -> np.ndarray:
    """Image-source RIR, starting just before the direct path, peak-normalised.

    The reflection order is capped because small, reverberant rooms otherwise need
    hundreds of orders (seconds of CPU per room); the cap shortens only the far tail.
    """
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(room.rt60, list(room.dimensions))
    shoebox = pra.ShoeBox(
        list(room.dimensions),
        fs=SAMPLE_RATE,
        materials=pra.Material(absorption),
        max_order=min(max_order, max_order_cap),
    )
    shoebox.add_source(list(room.source))
    shoebox.add_microphone(list(room.microphone))
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    peak = int(np.argmax(np.abs(rir)))
    rir = rir[max(0, peak - 40) :]  # drop propagation delay so speech offsets stay true
    return (rir / np.abs(rir).max()).astype(np.float32)


def reverberate(speech: np.ndarray, rir: np.ndarray, tail_s: float = 0.3) -> np.ndarray:
    """Convolve with a RIR, keep ``tail_s`` of reverberant tail, restore the dry speech level."""
    from scipy.signal import fftconvolve

    wet = fftconvolve(speech.astype(np.float64), rir.astype(np.float64))[
        : len(speech) + int(tail_s * SAMPLE_RATE)
    ]
    dry_power, wet_power = active_power(speech), active_power(wet)
    return (wet * np.sqrt(dry_power / (wet_power + _EPS))).astype(np.float32)


def apply_gain(
    audio: np.ndarray, gain_db: float, peak_limit: float = 0.99
) -> tuple[np.ndarray, float]:
    """Scale by ``gain_db``; if that would clip, scale down to ``peak_limit`` instead.

    Returns the audio and the gain actually applied (dB).
    """
    gain = 10 ** (gain_db / 20)
    peak = float(np.abs(audio).max()) * gain
    if peak > peak_limit:
        gain *= peak_limit / peak
    return (audio * gain).astype(np.float32), float(20 * np.log10(gain))


def estimate_snr_db(
    audio: np.ndarray,
    low_percentile: float = 2.0,
    high_percentile: float = 90.0,
    ceiling_db: float = 80.0,
) -> float:
    """Blind SNR estimate from frame energies: quiet frames ~ noise, loud frames ~ speech + noise.

    Crude but monotonic in the true SNR, which is what tests and sanity checks need.
    Digital silence (clean synthetic speech) gives the ``ceiling_db`` value.
    """
    powers = frame_powers(audio)
    noise = float(np.percentile(powers, low_percentile))
    loud = float(np.percentile(powers, high_percentile))
    snr = 10 * np.log10(max(loud - noise, _EPS) / max(noise, _EPS))
    return float(min(snr, ceiling_db))
