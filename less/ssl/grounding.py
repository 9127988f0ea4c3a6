"""Speech-image contrastive grounding beside self-supervised pretraining.

Our reading of FaST-VGS+ (Peng & Harwath, 2022) as used by arXiv 2509.17523 ("limited
visual grounding" of bilingual speech SSL): next to the masked-prediction objective, a
fraction of the steps also carries a batch of (utterance, image) pairs whose speech and
image embeddings are pulled together by a symmetric InfoNCE.  Here the images are the
mini corpus's scene renderings (``python -m less.bin.render_scenes``): one 64 x 64 PNG per
scene, shared by every utterance (of either language) whose sentence draws that scene.

Pieces (all ours, small on purpose: the grounding is a side objective of the encoder):

* :class:`SceneImages`: ``scenes.jsonl`` + ``images/`` -> a cut's scene key and image;
* :class:`ImageEncoder`: four strided convolutions, mean and max pooling, a projection;
  max pooling because the icons are small on a white background (a mean alone dilutes
  them); both embeddings are batch-normalised before the cosine (:class:`GroundingHead`);
* :class:`AttentionPool`: one learned query attends over an encoder layer's frames
  (padding masked out) -> one speech embedding;
* :func:`info_nce`: symmetric InfoNCE on cosine similarities with a learnable, CLIP-style
  clamped temperature; other pairs *of the same scene* are no negatives (they are correct
  matches: two utterances of one sentence, or its two languages);
* :func:`retrieval_recall`: speech -> image R@k against the distinct scenes;
* :class:`PairedBatches`: the paired stream, a function of the paired-batch index alone
  (like SpeechLM's text batches), so a resumed run draws the same pairs.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

MIN_PAIRS = 4  # a pass's last paired batch, when smaller, joins the one before
MAX_LOGIT_SCALE = 100.0  # CLIP: the inverse temperature is clamped at 100 (temperature >= 0.01)


@dataclass
class GroundingConfig:
    images: str | None = None  # render_scenes output directory; None: no grounding
    cuts: list[str] = field(default_factory=list)  # paired cut sets (with features), concatenated
    valid_cuts: list[str] = field(default_factory=list)  # validation pairs (InfoNCE, R@1, R@5)
    weight: float = 1.0  # loss += weight * InfoNCE on paired steps
    every: int = 2  # a paired batch on every K-th step (2: alternating)
    stack: str = "final"  # encoder layer pooled: final (25 Hz output), embed, or a stack index
    dim: int = 256  # shared embedding dimension
    temperature: float = 0.07  # initial InfoNCE temperature (CLIP's)
    ssl_weight: float = 0.0  # SSL loss on the paired audio too (0: the SSL stream alone has it)
    max_duration: float = (
        0.0  # seconds of audio per paired batch (0: the SSL batches' max_duration)
    )

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"--visual-every must be >= 1, got {self.every}")
        if self.weight < 0 or self.ssl_weight < 0:
            raise ValueError(
                f"grounding weights must be >= 0, got {self.weight}, {self.ssl_weight}"
            )
        if not 0.01 <= self.temperature <= 1.0:
            raise ValueError(
                f"the initial temperature must be in [0.01, 1], got {self.temperature}"
            )
        if self.stack not in ("final", "embed") and not self.stack.isdigit():
            raise ValueError(f"--visual-stack: final, embed or a stack index, got {self.stack!r}")
        if self.images and not self.cuts:
            raise ValueError(
                "--visual-images needs --visual-cuts (the cut sets whose utterances have scenes)"
            )
        if (self.cuts or self.valid_cuts) and not self.images:
            raise ValueError("--visual-cuts / --visual-valid-cuts need --visual-images")

    @property
    def enabled(self) -> bool:
        return bool(self.images)

    def architecture(self) -> dict[str, Any]:
        """What the grounding parameters' shapes depend on: a resumed run must agree."""
        return {"enabled": self.enabled, "stack": self.stack, "dim": self.dim}


# ------------------------------------------------------------------- scenes
def scene_id(cut) -> str:
    """The id scenes.jsonl knows an utterance by: its supervision's, else the cut's."""
    return cut.supervisions[0].id if cut.supervisions else cut.id


class SceneImages:
    """The utterance -> scene index and the scene images of a render_scenes directory.

    Every image file is checked when the index is read, so a missing one fails at start-up
    (naming the line, the utterance and the file) rather than hours into training; images
    are decoded on first use and kept as uint8 tensors (3, size, size), one per scene.
    """

    def __init__(self, root: str | Path, size: int = 64) -> None:
        self.root = Path(root)
        self.index = self.root / "scenes.jsonl"
        self.size = size
        if not self.index.is_file():
            raise FileNotFoundError(
                f"{self.index}: no scene index (write it with python -m less.bin.render_scenes)"
            )
        self.scene_of: dict[str, str] = {}
        self.path_of: dict[str, Path] = {}
        self._cache: dict[str, Tensor] = {}
        for lineno, line in enumerate(self.index.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                self._add(line, f"{self.index}:{lineno}")

    def _add(self, line: str, where: str) -> None:
        try:
            row = json.loads(line)
            uid, key, image = row["id"], row["scene"], row["image"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(
                f"{where}: malformed line ({type(e).__name__}: {e}); expected "
                f'{{"id": ..., "scene": ..., "image": ...}}, got {line[:200]!r}'
            ) from None
        if not all(isinstance(v, str) and v for v in (uid, key, image)):
            raise ValueError(
                f"{where}: id, scene and image must be non-empty strings, got {line[:200]!r}"
            )
        if self.scene_of.setdefault(uid, key) != key:
            raise ValueError(
                f"{where}: utterance {uid} has two scenes, {self.scene_of[uid]} and {key}"
            )
        if key not in self.path_of:
            path = self.index.parent / image
            if not path.is_file():
                raise FileNotFoundError(
                    f"{where}: the image {path} of utterance {uid} (scene {key}) is missing"
                )
            self.path_of[key] = path

    def __len__(self) -> int:
        return len(self.scene_of)

    def key(self, cut) -> str | None:
        """The cut's scene key, or None when its utterance has no scene."""
        return self.scene_of.get(scene_id(cut))

    def has(self, cut) -> bool:
        return self.key(cut) is not None

    def image(self, key: str) -> Tensor:
        """The scene's image, uint8 (3, size, size) (resized when the file has another size)."""
        if key not in self._cache:
            self._cache[key] = self._load(key)
        return self._cache[key]

    def _load(self, key: str) -> Tensor:
        import numpy as np
        from PIL import Image

        path = self.path_of[key]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if img.size != (self.size, self.size):
                    img = img.resize((self.size, self.size), Image.BILINEAR)
                array = np.asarray(img, dtype=np.uint8).copy()
        except OSError as e:
            raise ValueError(f"{path} (scene {key}): cannot read the image: {e}") from None
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    def images(self, keys: Sequence[str]) -> Tensor:
        return torch.stack([self.image(k) for k in keys])


# ------------------------------------------------------------------ modules
class ImageEncoder(nn.Module):
    """uint8 images (B, 3, H, W) -> embeddings (B, dim); pixels scaled to [0, 1]."""

    def __init__(self, dim: int, channels: Sequence[int] = (32, 64, 128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.GELU()]
            previous = width
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * previous, dim)

    def forward(self, images: Tensor) -> Tensor:
        x = self.convs(images.float() / 255.0)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=-1)
        return self.proj(pooled)


class AttentionPool(nn.Module):
    """Frames (B, T, C) with lengths -> (B, dim): softmax attention of one learned query
    over the layer-normalised frames; padded frames get no weight and their values never
    enter the sum (they are replaced before anything is computed on them)."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.key = nn.Linear(in_dim, in_dim)
        self.query = nn.Parameter(torch.randn(in_dim) * in_dim**-0.5)
        self.proj = nn.Linear(in_dim, dim)

    def forward(self, frames: Tensor, lens: Tensor) -> Tensor:
        if int(lens.min()) < 1:
            raise ValueError(
                f"attention pooling needs at least one frame per utterance, got lengths {lens.tolist()}"
            )
        valid = (
            torch.arange(frames.shape[1], device=frames.device)[None, :]
            < lens.to(frames.device)[:, None]
        )
        h = self.norm(
            torch.where(
                valid[..., None], frames, torch.zeros((), dtype=frames.dtype, device=frames.device)
            )
        )
        scores = (self.key(h) @ self.query) / math.sqrt(h.shape[-1])
        weights = scores.masked_fill(~valid, float("-inf")).softmax(dim=1)
        return self.proj((weights.unsqueeze(-1) * h).sum(dim=1))


def same_scene_negatives(keys: Sequence[str], device: torch.device | None = None) -> Tensor:
    """(B, B) True where i != j share a scene: pairs that must not count as negatives."""
    codes = {k: n for n, k in enumerate(dict.fromkeys(keys))}
    ids = torch.tensor([codes[k] for k in keys], device=device)
    same = ids[:, None] == ids[None, :]
    return same & ~torch.eye(len(keys), dtype=torch.bool, device=device)


def info_nce_logits(logits: Tensor, keys: Sequence[str]) -> Tensor:
    """Symmetric InfoNCE of a (speech x image) logit matrix whose diagonal holds the pairs;
    the off-diagonal same-scene entries are dropped from both softmax denominators."""
    target = torch.arange(logits.shape[0], device=logits.device)
    masked = logits.masked_fill(same_scene_negatives(keys, logits.device), float("-inf"))
    return 0.5 * (F.cross_entropy(masked, target) + F.cross_entropy(masked.t(), target))


def info_nce(speech: Tensor, image: Tensor, keys: Sequence[str], scale: Tensor | float) -> Tensor:
    """Symmetric InfoNCE on cosine similarities times ``scale`` (the inverse temperature)."""
    if speech.shape != image.shape or speech.shape[0] != len(keys):
        raise ValueError(
            f"speech {tuple(speech.shape)}, image {tuple(image.shape)} and {len(keys)} keys disagree"
        )
    logits = scale * F.normalize(speech.float(), dim=-1) @ F.normalize(image.float(), dim=-1).t()
    return info_nce_logits(logits, keys)


def retrieval_recall(
    speech: Tensor, image: Tensor, keys: Sequence[str], ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Speech -> image R@k: the share of utterances whose scene is among the k images most
    similar (cosine) to them.  The gallery holds each distinct scene once (its first image
    embedding), so a scene shared by many utterances is not retrieved k times and chance
    is k / (distinct scenes)."""
    if speech.shape[0] != image.shape[0] or speech.shape[0] != len(keys):
        raise ValueError(
            f"{speech.shape[0]} speech, {image.shape[0]} image embeddings and {len(keys)} keys"
        )
    first: dict[str, int] = {}
    for n, key in enumerate(keys):
        first.setdefault(key, n)
    position = {key: g for g, key in enumerate(first)}
    gallery = image[list(first.values())]
    sims = F.normalize(speech.float(), dim=-1) @ F.normalize(gallery.float(), dim=-1).t()
    truth = torch.tensor([position[k] for k in keys])
    ranked = sims.argsort(dim=1, descending=True).cpu()
    return {f"r{k}": float((ranked[:, :k] == truth[:, None]).any(dim=1).float().mean()) for k in ks}


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Run ``modules`` in eval mode (gradients unchanged), restoring their modes after.

    The grounding pass reads the encoder so: the Zipformer's training-time regularisers
    (per-sequence channel masking, layer skipping, dropout) belong to the SSL pass; on the
    grounding pass they made the pooled embeddings so noisy that, on the test's toy pairs,
    InfoNCE stayed above chance for 40 steps where eval-mode frames learned (the same
    choice as BiRQ's label pass, :meth:`less.ssl.model.SslModel.enhanced_features`)."""
    modes = [(m, m.training) for m in modules]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for module, was_training in modes:
            module.train(was_training)


def frame_dim(model_config, stack: str) -> int:
    """Channels of the frames :meth:`EncoderOnly.representation` returns for ``stack``."""
    enc = model_config.encoder
    if stack == "final":
        return enc.output_dim
    if stack == "embed":
        return enc.encoder_dim[0]
    if not 0 <= int(stack) < enc.num_stacks:
        raise ValueError(f"--visual-stack {stack} outside 0..{enc.num_stacks - 1}")
    return enc.encoder_dim[int(stack)]


class GroundingHead(nn.Module):
    """Image encoder, attention pooling and the InfoNCE temperature: every parameter the
    grounding adds (saved under ``grounding.*``, which fine-tuning does not take)."""

    def __init__(self, in_dim: int, dim: int = 256, temperature: float = 0.07) -> None:
        super().__init__()
        self.image_encoder = ImageEncoder(dim)
        self.pool = AttentionPool(in_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        # standardise each embedding dimension over the batch (running statistics in eval), as
        # SimCLR's projection head does: at initialisation every utterance's pooled frames, and
        # every image's pooled features, share one large component (cosines ~0.99); without this
        # InfoNCE barely moves in 100 steps, with it it learns the test's toy pairs in ~40
        # (a running mean subtracted instead, without the scaling, did not help)
        self.speech_norm = nn.BatchNorm1d(dim, affine=False)
        self.image_norm = nn.BatchNorm1d(dim, affine=False)

    def scale(self) -> Tensor:
        """exp(logit_scale) clamped to [1, 100] as CLIP does (temperature 0.01..1)."""
        return self.logit_scale.clamp(0.0, math.log(MAX_LOGIT_SCALE)).exp()

    def forward(
        self, frames: Tensor, lens: Tensor, images: Tensor, keys: Sequence[str]
    ) -> dict[str, Any]:
        if self.training and len(keys) < 2:
            raise ValueError(
                "a training batch of pairs needs at least two (negatives, batch statistics)"
            )
        speech = self.speech_norm(self.pool(frames, lens))
        image = self.image_norm(self.image_encoder(images))
        scale = self.scale()
        loss = info_nce(speech, image, keys, scale)
        with torch.no_grad():
            sims = F.normalize(speech.float(), dim=-1) @ F.normalize(image.float(), dim=-1).t()
            picked = [keys[int(j)] for j in sims.argmax(dim=1)]
            accuracy = sum(p == k for p, k in zip(picked, keys)) / len(keys)
        return {
            "visual_infonce": loss,
            "visual_acc": accuracy,
            "visual_temp": float(1.0 / scale.detach()),
            "speech_emb": speech.detach(),
            "image_emb": image.detach(),
        }


# ------------------------------------------------------------------- stream
class PairedBatches:
    """Batches of paired cuts as a function of the paired-batch index alone.

    Pass ``p`` shuffles all cuts with ``seed`` and ``p`` and fills batches of at most
    ``max_duration`` seconds in that order; batch ``i`` is batch ``i mod per_pass`` of pass
    ``i // per_pass``.  Several cut sets (languages) are simply concatenated first, so each
    contributes in proportion to its size and a pass uses every cut once.  A last batch of
    fewer than ``MIN_PAIRS`` cuts joins the one before (it would have few negatives, and
    the embeddings' batch normalisation degenerates on two samples).  No duration
    bucketing: contrastive negatives should be a random draw, and the utterances of one
    corpus are of similar length.  ``shuffle=False``: one fixed order (validation).
    """

    def __init__(
        self, cuts: Sequence[Any], max_duration: float, seed: int = 0, shuffle: bool = True
    ) -> None:
        if len(cuts) < 2:
            raise ValueError(f"{len(cuts)} paired cuts: a contrastive batch needs at least two")
        longest = max(c.duration for c in cuts)
        if max_duration < longest:
            raise ValueError(
                f"paired batches of {max_duration} s cannot hold the longest paired cut ({longest:.2f} s)"
            )
        self.cuts, self.max_duration, self.seed, self.shuffle = (
            list(cuts),
            max_duration,
            seed,
            shuffle,
        )
        self._passes: dict[int, list[list[int]]] = {}
        self.per_pass = len(self._pass(0))

    def _pass(self, index: int) -> list[list[int]]:
        if index not in self._passes:
            order = list(range(len(self.cuts)))
            if self.shuffle:
                random.Random(self.seed * 1_000_003 + index).shuffle(order)
            batches, current, seconds = [], [], 0.0
            for i in order:
                if current and seconds + self.cuts[i].duration > self.max_duration:
                    batches.append(current)
                    current, seconds = [], 0.0
                current.append(i)
                seconds += self.cuts[i].duration
            if (
                len(current) < MIN_PAIRS and batches
            ):  # a tiny batch has few negatives, poor batch statistics
                batches[-1] += current
            else:
                batches.append(current)
            self._passes = {index: batches}  # one pass in memory
        return self._passes[index]

    def __len__(self) -> int:
        return self.per_pass

    def __getitem__(self, index: int) -> list[Any]:
        pass_index, within = divmod(index, self.per_pass)
        batches = self._pass(pass_index)
        return [self.cuts[i] for i in batches[within % len(batches)]]
