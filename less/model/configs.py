"""Model configuration: dataclasses that serialise to plain dicts (stored in checkpoints).

Named configurations (``get_config(name)``):

* ``small`` / ``medium`` / ``large``: icefall's LibriSpeech Zipformer settings
  (``zipformer/train.py`` flags; medium is icefall's default).  With a 500-token vocabulary
  encoder + CTC have about 22.1M / 64.3M / 147.0M parameters, and 46.3M / 90.0M / 174.3M
  with icefall's 6-layer, 512-dim attention decoder.
* ``xs``: for CPU work on the mini corpus: every Zipformer feature (6 stacks at 50, 25,
  12.5, 6.25, 12.5, 25 Hz, two attention/conv modules per layer, ...) but one layer per
  stack, narrow stacks (96..160 channels), a lighter front end and a 2-layer 192-dim decoder:
  3.4M parameters for encoder + CTC, 4.6M with decoder (500-token vocabularies).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from less.model.scaling import to_tuple

_PER_STACK = (
    "num_encoder_layers",
    "encoder_dim",
    "encoder_unmasked_dim",
    "feedforward_dim",
    "num_heads",
    "query_head_dim",
    "pos_head_dim",
    "value_head_dim",
    "cnn_module_kernel",
)


@dataclass
class ZipformerConfig:
    """Encoder hyper-parameters; per-stack fields accept one int or one int per stack."""

    feature_dim: int = 80
    output_downsampling_factor: int = 2
    downsampling_factor: tuple[int, ...] = (1, 2, 4, 8, 4, 2)
    num_encoder_layers: tuple[int, ...] = (2, 2, 3, 4, 3, 2)
    encoder_dim: tuple[int, ...] = (192, 256, 384, 512, 384, 256)
    encoder_unmasked_dim: tuple[int, ...] = (192, 192, 256, 256, 256, 192)
    feedforward_dim: tuple[int, ...] = (512, 768, 1024, 1536, 1024, 768)
    num_heads: tuple[int, ...] = (4, 4, 4, 8, 4, 4)
    query_head_dim: tuple[int, ...] = (32,)
    pos_head_dim: tuple[int, ...] = (4,)
    value_head_dim: tuple[int, ...] = (12,)
    cnn_module_kernel: tuple[int, ...] = (31, 31, 15, 15, 15, 31)
    pos_dim: int = 48
    # dropout anneals from dropout_start to dropout_end over 20k batches (icefall: 0.3 -> 0.1)
    dropout_start: float = 0.3
    dropout_end: float = 0.1
    # batches over which stacks are warmed up one after another (layer-skip schedule)
    warmup_batches: float = 4000.0
    subsampling_channels: tuple[int, int, int] = (8, 32, 128)

    def __post_init__(self) -> None:
        self.downsampling_factor = tuple(int(d) for d in self.downsampling_factor)
        n = len(self.downsampling_factor)
        for name in _PER_STACK:
            setattr(self, name, to_tuple(getattr(self, name), n))
        self.subsampling_channels = tuple(int(c) for c in self.subsampling_channels)
        if self.output_downsampling_factor != 2:
            raise ValueError("output_downsampling_factor must be 2 (25 Hz output)")
        for i in range(n):
            if self.encoder_unmasked_dim[i] > self.encoder_dim[i]:
                raise ValueError(f"stack {i}: encoder_unmasked_dim > encoder_dim")
            if self.cnn_module_kernel[i] % 2 == 0:
                raise ValueError(f"stack {i}: cnn_module_kernel must be odd")

    @property
    def num_stacks(self) -> int:
        return len(self.downsampling_factor)

    @property
    def output_dim(self) -> int:
        return max(self.encoder_dim)


@dataclass
class ModelConfig:
    """The CTC/AED model: encoder, CTC head and optional attention decoder.

    ``decoder_vocab_size=None`` means CTC only.  For AST the CTC vocabulary is the source
    transcript's (Spanish BPE) and the decoder's the translation's (English BPE).
    ``sos_id == eos_id`` is the decoder's ``<sos/eos>`` id; blank 0 exists only for CTC.
    """

    encoder: ZipformerConfig = field(default_factory=ZipformerConfig)
    ctc_vocab_size: int = 500
    decoder_vocab_size: int | None = 500
    decoder_dim: int = 512
    decoder_num_layers: int = 6
    decoder_num_heads: int = 8
    decoder_feedforward_dim: int = 2048
    decoder_dropout: float = 0.1
    label_smoothing: float = 0.1
    ctc_dropout: float = 0.1
    blank_id: int = 0
    sos_id: int = 1
    eos_id: int = 1
    ctc_scale: float = 0.1
    aed_scale: float = 0.9
    # SpeechLM's shared unit encoder between the Zipformer and the heads (0: none, the
    # plain model; less.model.unit_encoder); its width is the encoder's output_dim
    unit_encoder_layers: int = 0
    unit_encoder_heads: int = 4
    unit_encoder_feedforward_dim: int = 512
    unit_encoder_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.unit_encoder_layers < 0:
            raise ValueError(f"unit_encoder_layers must be >= 0, got {self.unit_encoder_layers}")
        if isinstance(self.encoder, dict):
            self.encoder = ZipformerConfig(**self.encoder)
        if self.sos_id != self.eos_id:
            raise ValueError(f"sos_id ({self.sos_id}) must equal eos_id ({self.eos_id})")
        if self.decoder_vocab_size is not None and not 0 <= self.eos_id < self.decoder_vocab_size:
            raise ValueError(
                f"eos_id {self.eos_id} outside decoder vocabulary {self.decoder_vocab_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) that ``json``/``torch.save`` keep as is."""

        def plain(value: Any) -> Any:
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        encoder = data.pop("encoder", {})
        enc_known = {f.name for f in fields(ZipformerConfig)}
        if set(encoder) - enc_known:
            raise ValueError(f"unknown ZipformerConfig fields: {sorted(set(encoder) - enc_known)}")
        return cls(encoder=ZipformerConfig(**encoder), **data)


_ENCODERS: dict[str, dict[str, Any]] = {
    "xs": dict(
        num_encoder_layers=(1, 1, 1, 1, 1, 1),
        encoder_dim=(96, 128, 144, 160, 144, 128),
        encoder_unmasked_dim=(96, 96, 128, 128, 128, 96),
        feedforward_dim=(256, 320, 384, 448, 384, 320),
        num_heads=(4, 4, 4, 4, 4, 4),
        cnn_module_kernel=(31, 31, 15, 15, 15, 31),
        # the 100 Hz 2-D front end dominates CPU time at this size: half of icefall's 128
        subsampling_channels=(8, 32, 64),
    ),
    "small": dict(
        num_encoder_layers=(2, 2, 2, 2, 2, 2),
        encoder_dim=(192, 256, 256, 256, 256, 256),
        encoder_unmasked_dim=(192, 192, 192, 192, 192, 192),
        feedforward_dim=(512, 768, 768, 768, 768, 768),
    ),
    "medium": dict(),
    "large": dict(
        num_encoder_layers=(2, 2, 4, 5, 4, 2),
        encoder_dim=(192, 256, 512, 768, 512, 256),
        encoder_unmasked_dim=(192, 192, 256, 320, 256, 192),
        feedforward_dim=(512, 768, 1536, 2048, 1536, 768),
    ),
}

_DECODERS: dict[str, dict[str, Any]] = {
    "xs": dict(
        decoder_dim=192, decoder_num_layers=2, decoder_num_heads=4, decoder_feedforward_dim=512
    ),
}

CONFIG_NAMES = tuple(_ENCODERS)


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """A named configuration with ``overrides`` applied.

    Overrides may name ``ModelConfig`` fields (``ctc_vocab_size=300``,
    ``decoder_vocab_size=None``), ``ZipformerConfig`` fields (``num_encoder_layers=2``), or
    pass ``encoder={...}`` for the encoder fields.
    """
    if name not in _ENCODERS:
        raise ValueError(f"unknown model config {name!r}; choose from {CONFIG_NAMES}")
    model_fields = {f.name for f in fields(ModelConfig)} - {"encoder"}
    encoder_fields = {f.name for f in fields(ZipformerConfig)}
    encoder_args = dict(_ENCODERS[name])
    encoder_args.update(overrides.pop("encoder", {}) or {})
    model_args = dict(_DECODERS.get(name, {}))
    for key, value in overrides.items():
        if key in model_fields:
            model_args[key] = value
        elif key in encoder_fields:
            encoder_args[key] = value
        else:
            raise ValueError(f"unknown config field {key!r}")
    return ModelConfig(encoder=ZipformerConfig(**encoder_args), **model_args)
