"""Batches for training and decoding: lhotse samplers, feature input, SpecAugment, targets.

Why our own dataset class rather than lhotse's K2SpeechRecognitionDataset: a LESS batch
needs the source transcript (CTC target), the translation (AST decoder target) and the
cut ids (to log the cuts of a NaN/OOM batch), and SpecAugment must be reproducible per
batch so that a run resumed mid-epoch reaches the same weights as an uninterrupted one.
SpecAugment is seeded from the batch's cut ids and the epoch, not from worker state.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from less.data.cuts import supervision_target

log = logging.getLogger("less.data")


@dataclass
class SpecAugmentConfig:
    """Defaults as icefall's Zipformer recipes (lhotse SpecAugment settings)."""

    time_warp_factor: int = 80
    num_feature_masks: int = 2
    feature_mask_size: int = 27
    num_frame_masks: int = 10
    frame_mask_size: int = 100
    max_frames_mask_fraction: float = 0.15


@dataclass
class DataConfig:
    max_duration: float = 200.0  # seconds of audio per batch
    num_buckets: int = 10
    shuffle: bool = True
    drop_last: bool = False
    num_workers: int = 2
    on_the_fly_feats: bool = (
        False  # compute fbank in the loader (needed for on-the-fly speed perturbation)
    )
    speed_perturb: bool = (
        False  # on the fly, 0.9x/1.1x with probability 2/3 (needs on_the_fly_feats)
    )
    spec_augment: bool = True
    min_cut_duration: float = 0.3
    max_cut_duration: float = 30.0
    noise_cuts: str | None = None  # noise cut set mixed into training batches (icefall's MUSAN)
    noise_snr: tuple[float, float] = (10.0, 20.0)
    noise_prob: float = 0.5
    # Kaldi's volume perturbation (perturb_data_dir_volume.sh draws a gain of 1/8..2): a gain
    # drawn uniformly in dB per training cut, applied to the log-mel features as the exact
    # offset 2*ln(gain) (energies scale by gain^2). None: off.
    volume_db: tuple[float, float] | None = None
    spec_aug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)


def _batch_seed(cut_ids: Sequence[str], epoch: int, base_seed: int) -> int:
    digest = hashlib.sha1(f"{base_seed}:{epoch}:{','.join(cut_ids)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def spec_augment(
    feats: torch.Tensor, feat_lens: torch.Tensor, cfg: SpecAugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Time warp, frequency masks and time masks (Park et al., 2019) on a padded batch (B, T, F).

    Masks are set to the utterance mean (zero after mean normalisation would be an
    arbitrary loud value for log-mel features). The number of time masks scales down for
    short utterances so that at most ``max_frames_mask_fraction`` of frames are masked.
    """
    feats = feats.clone()
    batch, _, num_bins = feats.shape
    for b in range(batch):
        length = int(feat_lens[b])
        if length < 2:
            continue
        x = feats[b, :length]
        if cfg.time_warp_factor > 0 and length > 2 * cfg.time_warp_factor + 2:
            center = int(
                torch.randint(
                    cfg.time_warp_factor, length - cfg.time_warp_factor, (1,), generator=generator
                )
            )
            warped = center + int(
                torch.randint(
                    -cfg.time_warp_factor + 1, cfg.time_warp_factor, (1,), generator=generator
                )
            )
            left = torch.nn.functional.interpolate(
                x[None, None, :center],
                size=(warped, num_bins),
                mode="bilinear",
                align_corners=False,
            )
            right = torch.nn.functional.interpolate(
                x[None, None, center:],
                size=(length - warped, num_bins),
                mode="bilinear",
                align_corners=False,
            )
            x = torch.cat([left[0, 0], right[0, 0]], dim=0)
        fill = x.mean()
        for _ in range(cfg.num_feature_masks):
            width = int(torch.randint(0, cfg.feature_mask_size + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, num_bins - width), (1,), generator=generator))
            x[:, start : start + width] = fill
        max_masked = cfg.max_frames_mask_fraction * length
        num_masks = min(
            cfg.num_frame_masks, math.ceil(max_masked / max(cfg.frame_mask_size, 1)) + 1
        )
        mask_size = min(cfg.frame_mask_size, int(max_masked / max(num_masks, 1)))
        for _ in range(num_masks):
            width = int(torch.randint(0, mask_size + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, length - width), (1,), generator=generator))
            x[start : start + width, :] = fill
        feats[b, :length] = x
    return feats


def perturb_volume(
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    db_range: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """Add one random gain per utterance to log-mel features (B, T, F); padding untouched.

    A gain of g dB multiplies the power spectrum by 10^(g/10), i.e. adds g*ln(10)/10 to
    every natural-log mel energy (up to lhotse's energy floor on silent bins).
    """
    low, high = db_range
    if low > high:
        raise ValueError(f"volume perturbation range {db_range}: low must not exceed high")
    gains_db = low + (high - low) * torch.rand(feats.shape[0], generator=generator)
    offsets = (gains_db * math.log(10.0) / 10.0).to(feats.dtype)
    valid = torch.arange(feats.shape[1])[None, :] < feat_lens[:, None]
    return feats + offsets[:, None, None] * valid[:, :, None].to(feats.dtype)


class SpeechDataset(torch.utils.data.Dataset):
    """Maps a CutSet (one sampler batch) to padded features and texts.

    Each cut must have exactly one supervision (cuts are trimmed to supervisions in
    data preparation). ``texts`` are the source transcripts, ``translations`` the first
    English reference (AST) or None.
    """

    def __init__(self, cfg: DataConfig, training: bool, seed: int = 0):
        from lhotse import Fbank, FbankConfig
        from lhotse.dataset import OnTheFlyFeatures, PrecomputedFeatures
        from lhotse.dataset.cut_transforms import PerturbSpeed

        self.cfg = cfg
        self.training = training
        self.seed = seed
        self.epoch = 0
        if cfg.on_the_fly_feats:
            self.input_strategy = OnTheFlyFeatures(Fbank(FbankConfig(num_mel_bins=80)))
        else:
            self.input_strategy = PrecomputedFeatures()
        self.perturb = (
            PerturbSpeed(factors=[0.9, 1.1], p=2 / 3) if (training and cfg.speed_perturb) else None
        )
        if self.perturb is not None and not cfg.on_the_fly_feats:
            raise ValueError(
                "speed_perturb on the fly needs on_the_fly_feats (or precompute it in stage 2)"
            )
        self.noise = None
        if training and cfg.noise_cuts:
            from less.data.cuts import read_cuts

            self.noise = read_cuts(cfg.noise_cuts).to_eager()
            if len(self.noise) == 0:
                raise ValueError(f"{cfg.noise_cuts}: the noise cut set is empty")
            if not cfg.on_the_fly_feats and not all(c.has_features for c in self.noise):
                raise ValueError(
                    f"{cfg.noise_cuts}: noise cuts need features to mix into precomputed ones"
                )

    def __getitem__(self, cuts) -> dict[str, Any]:
        import random

        cuts = cuts.sort_by_duration(ascending=False)
        cut_ids = [c.id for c in cuts]
        if self.perturb is not None:
            self.perturb.random = random.Random(_batch_seed(cut_ids, self.epoch, self.seed))
            cuts = self.perturb(cuts)
        if self.noise is not None:
            from lhotse.dataset.cut_transforms import CutMix

            # Mixed in the fbank (energy) domain with precomputed features, as icefall mixes MUSAN.
            mix = CutMix(
                self.noise,
                snr=tuple(self.cfg.noise_snr),
                p=self.cfg.noise_prob,
                pad_to_longest=False,
                preserve_id=True,
                seed=random.Random(_batch_seed(cut_ids, self.epoch, self.seed + 1)),
            )
            cuts = mix(cuts)
        for cut in cuts:
            if len(cut.supervisions) != 1:
                raise ValueError(
                    f"cut {cut.id}: expected exactly one supervision, found {len(cut.supervisions)}"
                )
        feats, feat_lens = self.input_strategy(cuts)
        if self.training and self.cfg.volume_db is not None:
            generator = torch.Generator().manual_seed(
                _batch_seed(cut_ids, self.epoch, self.seed + 2)
            )
            feats = perturb_volume(feats, feat_lens, self.cfg.volume_db, generator)
        if self.training and self.cfg.spec_augment:
            generator = torch.Generator().manual_seed(_batch_seed(cut_ids, self.epoch, self.seed))
            feats = spec_augment(feats, feat_lens, self.cfg.spec_aug, generator)
        sups = [c.supervisions[0] for c in cuts]
        return {
            "inputs": feats,
            "input_lens": feat_lens,
            "cut_ids": cut_ids,
            "durations": [c.duration for c in cuts],
            "texts": [s.text for s in sups],
            "translations": [supervision_target(s, "translation", "en") for s in sups],
        }


class SkipBatches:
    """Iterate a sampler but drop its first ``skip`` batches (exact mid-epoch resume).

    The sampler yields cut metadata only, so fast-forwarding is cheap; it does not rely
    on the sampler's own state, which runs ahead of training when workers prefetch.
    """

    def __init__(self, sampler, skip: int = 0):
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator:
        for i, batch in enumerate(self.sampler):
            if i >= self.skip:
                yield batch
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def _one_thread_per_worker(_: int) -> None:
    """Loader workers only read and augment features: more threads would fight the trainer."""
    torch.set_num_threads(1)


def load_cuts(paths: Sequence[str | Path], weights: Sequence[float] | None = None, seed: int = 0):
    """One lazy CutSet from several files; with weights, interleaved by ``CutSet.mux``."""
    from lhotse import CutSet

    sets = [CutSet.from_file(p) for p in paths]
    if not sets:
        raise ValueError("no cut sets given")
    if len(sets) == 1:
        return sets[0]
    if weights is None:
        weights = [1.0] * len(sets)
    if len(weights) != len(sets):
        raise ValueError(f"{len(sets)} cut sets but {len(weights)} weights")
    return CutSet.mux(*sets, weights=list(weights), seed=seed)


def make_loader(
    cuts,
    cfg: DataConfig,
    training: bool,
    seed: int = 0,
    world_size: int | None = None,
    rank: int | None = None,
    skip_batches: int = 0,
    keep: Callable[[Any], bool] | None = None,
    epoch: int | None = None,
):
    """DataLoader over a DynamicBucketingSampler (training) or a plain ordered sampler.

    ``epoch``: the sampler's shuffling and the dataset's augmentation draw that epoch's order
    (with ``skip_batches``: a loader resumed in the middle of that epoch).

    Training drops cuts outside ``[min_cut_duration, max_cut_duration]`` and those for which
    ``keep`` (e.g. "the CTC target fits in the output frames") is false; otherwise only
    ``keep`` applies (validation), and decoding, which passes none, keeps every cut.
    """
    from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

    if training:

        def accept(cut) -> bool:
            if not cfg.min_cut_duration <= cut.duration <= cfg.max_cut_duration:
                return False
            return keep is None or keep(cut)

        cuts = cuts.filter(accept)
        # lhotse refuses more buckets than cuts; a set that small needs fewer (reads <= num_buckets cuts)
        num_buckets = max(1, sum(1 for _ in itertools.islice(cuts, cfg.num_buckets)))
        sampler = DynamicBucketingSampler(
            cuts,
            max_duration=cfg.max_duration,
            num_buckets=num_buckets,
            shuffle=cfg.shuffle,
            drop_last=cfg.drop_last,
            seed=seed,
            world_size=world_size,
            rank=rank,
        )
    else:
        if keep is not None:
            cuts = cuts.filter(keep)
        sampler = SimpleCutSampler(
            cuts, max_duration=cfg.max_duration, shuffle=False, world_size=world_size, rank=rank
        )
    dataset = SpeechDataset(cfg, training=training, seed=seed)
    wrapped = SkipBatches(sampler, skip_batches)
    if epoch is not None:
        wrapped.set_epoch(epoch)
        dataset.epoch = epoch
    # Its own generator: creating a loader iterator otherwise draws from the global RNG,
    # which would make a run resumed mid-epoch diverge from an uninterrupted one.
    loader = torch.utils.data.DataLoader(
        dataset,
        sampler=wrapped,
        batch_size=None,
        num_workers=cfg.num_workers,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_one_thread_per_worker if cfg.num_workers > 0 else None,
    )
    return loader, wrapped, dataset
