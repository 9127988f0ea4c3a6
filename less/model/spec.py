"""What a training configuration says about its model: the one place a checkpoint's model
is rebuilt from (training, decoding, ONNX export).

A checkpoint stores the trainer's whole configuration as a plain dict (``ckpt["config"]``);
:meth:`ModelSpec.from_train_config` reads the model's part of it, checked and typed, and
:meth:`ModelSpec.build` makes the model with the vocabulary sizes of the tokenizers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from less.model.ctc_aed import CtcAedModel, build_model

TASKS = ("asr", "ast")


@dataclass(frozen=True)
class ModelSpec:
    name: str  # configuration name (less.model.configs: "xs", "s", ...)
    task: str  # asr (CTC and decoder share the tokens) or ast (the decoder has its own)
    lang_dir: str  # tokens of the CTC head (source language)
    decoder_lang_dir: str | None = None  # ast: tokens of the attention decoder (target language)
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields to change
    ctc_scale: float | None = None  # loss weights (None: the configuration's)
    aed_scale: float | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} (asr or ast)")
        if self.task == "ast" and not self.decoder_lang_dir:
            raise ValueError("task ast needs decoder_lang_dir (the target-language tokens)")

    @classmethod
    def from_train_config(cls, config: Mapping[str, Any]) -> ModelSpec:
        """The model part of a trainer configuration (``asdict(TrainConfig)`` or ``ckpt["config"]``)."""
        missing = [key for key in ("model", "task", "lang_dir") if not config.get(key)]
        if missing:
            raise ValueError(
                f"training configuration without {', '.join(missing)}: not a CTC/AED checkpoint"
            )
        return cls(
            name=config["model"],
            task=config["task"],
            lang_dir=str(config["lang_dir"]),
            decoder_lang_dir=(
                str(config["decoder_lang_dir"])
                if config["task"] == "ast" and config.get("decoder_lang_dir")
                else None
            ),
            overrides=dict(config.get("model_overrides") or {}),
            ctc_scale=config.get("ctc_scale"),
            aed_scale=config.get("aed_scale"),
        )

    def tokenizers(self):
        """(CTC tokenizer, decoder tokenizer); the same object for asr."""
        from less.data.tokenizer import load_tokenizer

        ctc = load_tokenizer(self.lang_dir)
        return ctc, (load_tokenizer(self.decoder_lang_dir) if self.task == "ast" else ctc)

    def build(self, ctc_tokenizer, decoder_tokenizer) -> CtcAedModel:
        """The model, vocabulary sizes from the tokenizers; ``overrides`` may still set
        ``decoder_vocab_size`` to ``None`` for a CTC-only model."""
        kwargs: dict[str, Any] = {
            "ctc_vocab_size": ctc_tokenizer.vocab_size,
            "decoder_vocab_size": decoder_tokenizer.vocab_size,
            "sos_id": decoder_tokenizer.sos_id,
            "eos_id": decoder_tokenizer.eos_id,
            **self.overrides,
        }
        if self.ctc_scale is not None:
            kwargs["ctc_scale"] = self.ctc_scale
        if self.aed_scale is not None:
            kwargs["aed_scale"] = self.aed_scale
        return build_model(self.name, **kwargs)
