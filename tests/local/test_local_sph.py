"""SPHERE -> FLAC conversion (less.local.sph) on files written the way LDC writes them."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording

from less.local.sph import (
    ShortenCompressedError,
    SphereError,
    convert_dir,
    main,
    read_sphere,
    read_sphere_header,
)
from tests.fake_corpora import noise, write_sphere

RATE = 8000


def two_channels(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    samples = noise(seconds, RATE, seed, channels=2)
    samples[:, 1] = (samples[:, 1] // 3) + 1000  # make the channels clearly different
    return samples


def read_flac(path):
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    return data, rate


@pytest.mark.parametrize("byte_format", ["01", "10"])
def test_pcm16_round_trips_exactly(tmp_path, byte_format):
    original = two_channels()
    write_sphere(
        tmp_path / "in" / "a" / "conv.sph", original, coding="pcm", byte_format=byte_format
    )
    [flac] = convert_dir(tmp_path / "in", tmp_path / "out")
    assert flac == tmp_path / "out" / "a" / "conv.flac"
    data, rate = read_flac(flac)
    assert rate == RATE
    assert data.shape == original.shape == (4000, 2)
    np.testing.assert_array_equal(data, original)


def test_ulaw_matches_libsndfile_and_original_within_quantisation(tmp_path):
    original = two_channels(seed=3)
    sph = tmp_path / "in" / "conv.sph"
    write_sphere(sph, original, coding="ulaw", byte_format="1")
    [flac] = convert_dir(tmp_path / "in", tmp_path / "out")
    data, rate = read_flac(flac)
    assert rate == RATE and data.shape == original.shape
    # libsndfile reads this header (byte format "1"): our decoding must be identical.
    reference, _ = sf.read(sph, dtype="int16", always_2d=True)
    np.testing.assert_array_equal(data, reference)
    # μ-law keeps ~4 significant bits of mantissa: error under ~7% of the value (+ small floor).
    error = np.abs(data.astype(np.int32) - original.astype(np.int32))
    assert (error <= 0.07 * np.abs(original.astype(np.int32)) + 16).all()
    assert error.max() > 0  # it really went through μ-law


def test_ulaw_with_two_byte_byte_format_is_still_decoded(tmp_path):
    """libsndfile refuses μ-law headers saying "01"; LDC headers may say so."""
    original = two_channels(seed=4)
    write_sphere(tmp_path / "in" / "one.sph", original, coding="ulaw", byte_format="1")
    write_sphere(tmp_path / "in" / "two.sph", original, coding="ulaw", byte_format="01")
    with pytest.raises(RuntimeError):
        sf.read(tmp_path / "in" / "two.sph")
    one, _ = read_sphere(tmp_path / "in" / "one.sph")
    two, _ = read_sphere(tmp_path / "in" / "two.sph")
    np.testing.assert_array_equal(one, two)


def test_flac_loads_through_lhotse_with_both_channels(tmp_path):
    original = two_channels(seconds=1.0)
    write_sphere(tmp_path / "in" / "conv.sph", original, coding="pcm")
    [flac] = convert_dir(tmp_path / "in", tmp_path / "out")
    recording = Recording.from_file(flac)
    assert recording.num_channels == 2 and recording.sampling_rate == RATE
    audio = recording.load_audio()
    assert audio.shape == (2, 8000)
    np.testing.assert_allclose(audio[1], original[:, 1] / 32768, atol=1e-6)


def test_shorten_stops_before_converting_anything_with_a_clear_message(tmp_path):
    write_sphere(tmp_path / "in" / "a.sph", two_channels(), coding="pcm")
    write_sphere(tmp_path / "in" / "b.sph", two_channels(), coding="ulaw", shorten=True)
    header = read_sphere_header(tmp_path / "in" / "b.sph")
    assert header.is_shorten and header.coding == "ulaw"
    with pytest.raises(ShortenCompressedError) as error:
        convert_dir(tmp_path / "in", tmp_path / "out")
    message = str(error.value)
    assert "b.sph" in message and "shorten" in message
    assert "sph2pipe -f sph -p" in message and "--in-dir" in message
    assert not list((tmp_path).rglob("*.flac"))
    with pytest.raises(ShortenCompressedError):
        read_sphere(tmp_path / "in" / "b.sph")


def test_rerun_skips_converted_files(tmp_path):
    write_sphere(tmp_path / "in" / "a.sph", two_channels(), coding="pcm")
    [flac] = convert_dir(tmp_path / "in", tmp_path / "out")
    os.utime(flac, (1, 1))
    write_sphere(tmp_path / "in" / "b.SPH", two_channels(seed=5), coding="pcm")
    paths = convert_dir(tmp_path / "in", tmp_path / "out")
    assert [p.name for p in paths] == ["a.flac", "b.flac"]
    assert flac.stat().st_mtime == 1  # not rewritten
    assert not [
        p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")
    ]  # no temp files left


def test_truncated_file_is_an_error_naming_it(tmp_path):
    sph = tmp_path / "in" / "cut.sph"
    write_sphere(sph, two_channels(), coding="pcm")
    sph.write_bytes(sph.read_bytes()[:-100])
    with pytest.raises(SphereError, match="cut.sph: truncated"):
        read_sphere(sph)


def test_not_a_sphere_file(tmp_path):
    path = tmp_path / "x.sph"
    path.write_bytes(b"RIFF" + bytes(2000))
    with pytest.raises(SphereError, match="not a NIST SPHERE file"):
        read_sphere_header(path)


def test_cli_missing_input_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        main(["--in-dir", str(tmp_path / "does-not-exist"), "--out-dir", str(tmp_path / "out")])


def test_cli_converts(tmp_path):
    write_sphere(tmp_path / "in" / "c.sph", two_channels(), coding="ulaw")
    main(["--in-dir", str(tmp_path / "in"), "--out-dir", str(tmp_path / "out"), "--num-jobs", "2"])
    assert sf.info(str(tmp_path / "out" / "c.flac")).channels == 2
