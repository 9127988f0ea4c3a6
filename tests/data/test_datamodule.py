"""Training batches: noise mixing (the mini recipe's MUSAN), SpecAugment, reproducibility."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet

from less.bin import compute_fbank
from less.data.datamodule import DataConfig, SpecAugmentConfig, SpeechDataset, spec_augment
from less.local.mini.noise import noise_recording, prepare_noise
from tests.helpers import flags


def test_noise_corpus_is_deterministic_and_varied(tmp_path: Path):
    a, b, c = noise_recording(42, 0, 2.0), noise_recording(42, 0, 2.0), noise_recording(43, 0, 2.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and len(a) == 32000 and 0.1 < np.abs(a).max() <= 0.5
    # spectral slopes differ across recordings: low/high band energy ratio spreads out
    ratios = []
    for i in range(8):
        spectrum = np.abs(np.fft.rfft(noise_recording(42, i, 2.0))) ** 2
        ratios.append(spectrum[:2000].sum() / spectrum[8000:].sum())
    assert max(ratios) / min(ratios) > 10
    manifest = prepare_noise(tmp_path, 42, count=2, duration=1.0)
    from lhotse import load_manifest

    recordings = load_manifest(manifest)
    assert len(recordings) == 2 and all(
        r.sampling_rate == 16000 and r.duration == 1.0 for r in recordings
    )


@pytest.fixture(scope="module")
def noise_cuts(mini_data: Path) -> Path:
    out = mini_data / "fbank" / "mini-noise_cuts.jsonl.gz"
    compute_fbank.main(
        [
            *flags(
                recordings=str(mini_data / "manifests" / "mini-noise_recordings.jsonl.gz"),
                out_cuts=str(out),
            ),
        ]
    )
    return out


def test_noise_mixing_keeps_labels_fills_silence_and_is_reproducible(
    mini_data: Path, noise_cuts: Path
):
    cuts = CutSet.from_file(mini_data / "fbank" / "mini-asr_cuts_train_sup.jsonl.gz").subset(
        first=3
    )
    clean = SpeechDataset(DataConfig(spec_augment=False), training=True)[cuts]
    noisy_ds = SpeechDataset(
        DataConfig(spec_augment=False, noise_cuts=str(noise_cuts), noise_prob=1.0), training=True
    )
    noisy = noisy_ds[cuts]
    assert noisy["cut_ids"] == clean["cut_ids"] and noisy["texts"] == clean["texts"]
    assert torch.equal(noisy["input_lens"], clean["input_lens"])
    # noise raises the quietest frames (the pauses) far more than the speech
    for b, length in enumerate(clean["input_lens"].tolist()):
        quiet_clean = clean["inputs"][b, :length].mean(-1).min()
        quiet_noisy = noisy["inputs"][b, :length].mean(-1).min()
        assert quiet_noisy > quiet_clean + 2.0
    assert torch.equal(noisy_ds[cuts]["inputs"], noisy["inputs"])  # same batch, same noise
    noisy_ds.epoch = 2
    assert not torch.equal(noisy_ds[cuts]["inputs"], noisy["inputs"])  # another epoch, other noise
    never = SpeechDataset(
        DataConfig(spec_augment=False, noise_cuts=str(noise_cuts), noise_prob=0.0), training=True
    )[cuts]
    assert torch.equal(never["inputs"], clean["inputs"])
    # decoding never adds noise
    evaluation = SpeechDataset(
        DataConfig(spec_augment=False, noise_cuts=str(noise_cuts), noise_prob=1.0), training=False
    )[cuts]
    assert torch.equal(evaluation["inputs"], clean["inputs"])


def test_spec_augment_masks_within_bounds():
    torch.manual_seed(0)
    feats = torch.randn(2, 400, 80) + 5.0
    lens = torch.tensor([400, 250])
    cfg = SpecAugmentConfig(time_warp_factor=0)
    out = spec_augment(feats, lens, cfg, torch.Generator().manual_seed(1))
    again = spec_augment(feats, lens, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert torch.equal(out[1, 250:], feats[1, 250:])  # padding untouched
    for b, length in enumerate(lens.tolist()):
        changed_frames = (out[b, :length] != feats[b, :length]).all(dim=1).float().mean()
        assert changed_frames <= cfg.max_frames_mask_fraction + 1e-6
        changed_bins = (out[b, :length] != feats[b, :length]).all(dim=0).sum()
        assert changed_bins <= cfg.num_feature_masks * cfg.feature_mask_size
    assert not torch.equal(out, feats)


def test_volume_perturbation_is_a_per_utterance_gain_in_range(mini_data: Path):
    cuts = CutSet.from_file(mini_data / "fbank" / "mini-asr_cuts_train_sup.jsonl.gz").subset(
        first=4
    )
    clean = SpeechDataset(DataConfig(spec_augment=False), training=True)[cuts]
    ds = SpeechDataset(DataConfig(spec_augment=False, volume_db=(-18.0, 6.0)), training=True)
    loud = ds[cuts]
    offsets = []
    for b, length in enumerate(clean["input_lens"].tolist()):
        diff = loud["inputs"][b, :length] - clean["inputs"][b, :length]
        # one constant per utterance: a gain, not noise
        assert torch.allclose(diff, diff[0, 0].expand_as(diff), atol=1e-4)
        gain_db = diff[0, 0].item() * 10 / math.log(10)
        assert -18.0 - 1e-3 <= gain_db <= 6.0 + 1e-3
        offsets.append(gain_db)
        assert torch.equal(
            loud["inputs"][b, length:], clean["inputs"][b, length:]
        )  # padding untouched
    assert len({round(o, 3) for o in offsets}) == len(offsets)  # drawn per utterance
    assert torch.equal(ds[cuts]["inputs"], loud["inputs"])  # reproducible per batch and epoch
    ds.epoch = 1
    assert not torch.equal(ds[cuts]["inputs"], loud["inputs"])
    evaluation = SpeechDataset(
        DataConfig(spec_augment=False, volume_db=(-18.0, 6.0)), training=False
    )[cuts]
    assert torch.equal(evaluation["inputs"], clean["inputs"])  # never at decoding time


def test_volume_perturbation_matches_scaling_the_audio():
    """The feature offset equals what fbank gives on audio scaled by the gain (away from the floor)."""
    from lhotse import Fbank, FbankConfig

    from less.data.datamodule import perturb_volume

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    fbank = Fbank(FbankConfig(num_mel_bins=80))
    feats = torch.from_numpy(fbank.extract(audio, 16000))[None]
    lens = torch.tensor([feats.shape[1]])
    gen = torch.Generator().manual_seed(0)
    shifted = perturb_volume(feats, lens, (-12.0, -12.0), gen)
    scaled = torch.from_numpy(fbank.extract(audio * 10 ** (-12 / 20), 16000))[None]
    assert torch.allclose(shifted, scaled, atol=1e-2)
    with pytest.raises(ValueError, match="low must not exceed"):
        perturb_volume(feats, lens, (6.0, -18.0), gen)


def test_train_cli_reads_volume_range():
    from less.bin.train import config_from_args, get_parser

    base = ["--task", "asr", "--exp-dir", "x", "--lang-dir", "y", "--train-cuts", "z"]
    assert config_from_args(get_parser().parse_args(base)).data.volume_db is None
    assert config_from_args(
        get_parser().parse_args(base + ["--volume-db=-18,6"])
    ).data.volume_db == (-18.0, 6.0)
    with pytest.raises(SystemExit):
        get_parser().parse_args(base + ["--volume-db=6,-18"])


def test_training_loader_over_fewer_cuts_than_buckets(mini_data: Path):
    """lhotse refuses more duration buckets than cuts: a tiny set still trains, every cut once."""
    from less.data.datamodule import make_loader

    cuts = (
        CutSet.from_file(mini_data / "fbank" / "mini-asr_cuts_train_sup.jsonl.gz")
        .subset(first=3)
        .to_eager()
    )
    cfg = DataConfig(spec_augment=False, num_buckets=10, num_workers=0, max_duration=1000.0)
    loader, _, _ = make_loader(cuts, cfg, training=True, seed=1)
    seen = [cut_id for batch in loader for cut_id in batch["cut_ids"]]
    assert sorted(seen) == sorted(c.id for c in cuts)
