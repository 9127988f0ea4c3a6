"""The student model (Zipformer CTC/AED), its building blocks and its optimiser."""

from less.model.attention_decoder import AttentionDecoder, LabelSmoothingLoss
from less.model.configs import CONFIG_NAMES, ModelConfig, ZipformerConfig, get_config
from less.model.ctc_aed import (
    CtcAedModel,
    build_model,
    count_parameters,
    encoder_ctc_parameters,
    output_lengths,
    set_batch_count,
)
from less.model.optim import Eden, ScaledAdam
from less.model.scaling import BiasNorm, ScheduledFloat, SwooshL, SwooshR
from less.model.spec import ModelSpec
from less.model.subsampling import Conv2dSubsampling
from less.model.zipformer import Zipformer

__all__ = [
    "AttentionDecoder",
    "BiasNorm",
    "CONFIG_NAMES",
    "Conv2dSubsampling",
    "CtcAedModel",
    "Eden",
    "LabelSmoothingLoss",
    "ModelConfig",
    "ModelSpec",
    "ScaledAdam",
    "ScheduledFloat",
    "SwooshL",
    "SwooshR",
    "Zipformer",
    "ZipformerConfig",
    "build_model",
    "count_parameters",
    "encoder_ctc_parameters",
    "get_config",
    "output_lengths",
    "set_batch_count",
]
