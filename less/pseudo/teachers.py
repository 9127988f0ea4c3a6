"""Teachers that pseudo-label unlabeled cuts: our own checkpoint, or Whisper via transformers.

Both return, per cut, a :class:`PseudoLabel`: the 1-best text, an N-best list of
``(text, score)``, a confidence in [0, 1], and for speech translation the source-language
transcript (the student's CTC target).

* :class:`CheckpointTeacher` — a model trained by ``less.bin.train``. ASR: CTC prefix
  beam search + attention-decoder rescoring (icefall); AST: attention beam search for the
  translation, CTC greedy search for the Spanish transcript.
* :class:`WhisperTeacher` — ``WhisperForConditionalGeneration`` from a local directory or
  a hub id (as in the LESS paper, which used Whisper large-v3), ``task`` transcribe or
  translate, batched over length-sorted cuts, fp16/bf16 on GPU. Its score is the average
  token log-probability of the generated text; the confidence is its exponential.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from less.decode.recognizer import DecodeOptions, Hypothesis, Recognizer

log = logging.getLogger("less.pseudo")


@dataclass
class PseudoLabel(Hypothesis):
    """A teacher's :class:`Hypothesis` of one cut, with what the LM filter compares it to."""

    lm_text: str | None = None  # the same audio decoded with an n-gram LM (ctc-wfst; WeNet's)


class CheckpointTeacher:
    """Our own model as teacher; ``name`` is recorded in every pseudo-label record."""

    needs_features = True

    def __init__(
        self,
        recognizer: Recognizer,
        name: str,
        options: DecodeOptions | None = None,
        attention_scale: float = 1.0,
        wfst=None,
    ):
        self.recognizer = recognizer
        self.wfst = wfst  # a less.decode.wfst.CtcWfstDecoder: also decode with the n-gram LM
        self.name = name
        self.options = options or DecodeOptions()
        self.attention_scale = attention_scale
        self.task = recognizer.task

    @property
    def method(self) -> str:
        if self.task == "ast" or self.recognizer.model.attention_decoder is None:
            return "attention-beam-search" if self.task == "ast" else "ctc-prefix-beam-search"
        return "attention-decoder-rescoring"

    def label(self, batch: dict[str, Any]) -> list[PseudoLabel]:
        options = self.options
        if self.method == "attention-decoder-rescoring":
            options = DecodeOptions(
                **{**options.__dict__, "attention_scales": (self.attention_scale,)}
            )
        enc_out, enc_lens = self.recognizer.encode(batch["inputs"], batch["input_lens"])
        (hyps,) = self.recognizer.decode_encoded(enc_out, enc_lens, self.method, options).values()
        lm_texts = [None] * len(hyps)
        if self.wfst is not None:
            with_lm = DecodeOptions(**{**self.options.__dict__, "wfst": self.wfst})
            (lm_hyps,) = self.recognizer.decode_encoded(
                enc_out, enc_lens, "ctc-wfst", with_lm
            ).values()
            lm_texts = [h.text for h in lm_hyps]
        return [
            PseudoLabel(
                text=h.text, nbest=h.nbest, confidence=h.confidence, src_text=h.src_text, lm_text=lm
            )
            for h, lm in zip(hyps, lm_texts)
        ]


class WhisperTeacher:
    """Whisper through transformers (``task``: transcribe, or translate to English)."""

    needs_features = False

    def __init__(
        self,
        model_name_or_path: str,
        language: str,
        task: str = "transcribe",
        device: str | torch.device = "cpu",
        dtype: str = "fp32",
        num_beams: int = 1,
        max_new_tokens: int = 128,
    ):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        if task not in ("transcribe", "translate"):
            raise ValueError(f"Whisper task must be transcribe or translate, got {task!r}")
        self.device = torch.device(device)
        torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        if self.device.type == "cpu" and torch_dtype == torch.float16:
            raise ValueError("fp16 Whisper needs a GPU; use --dtype fp32 or bf16 on CPU")
        self.processor = WhisperProcessor.from_pretrained(model_name_or_path)
        self.model = WhisperForConditionalGeneration.from_pretrained(
            model_name_or_path, dtype=torch_dtype
        )
        self.model.to(self.device).eval()
        self.dtype = torch_dtype
        self.language = language
        self.whisper_task = task
        self.num_beams = num_beams
        self.max_new_tokens = max_new_tokens
        self.name = f"whisper:{model_name_or_path}:{task}"
        # For speech translation the student's CTC target is the source transcript, which a
        # translate-mode Whisper does not give; a second, transcribe pass provides it.
        self.task = "ast" if task == "translate" else "asr"

    def _generate(self, audio: Sequence, task: str) -> list[tuple[str, float]]:
        features = self.processor.feature_extractor(
            [a for a in audio], sampling_rate=16000, return_tensors="pt", return_attention_mask=True
        )
        inputs = features.input_features.to(self.device, self.dtype)
        # the decoder prompt (<|startoftranscript|><|lang|><|task|><|notimestamps|>) counts too
        budget = min(self.max_new_tokens, self.model.config.max_target_positions - 4)
        with torch.no_grad():
            out = self.model.generate(
                inputs,
                attention_mask=features.attention_mask.to(self.device),
                language=self.language,
                task=task,
                num_beams=self.num_beams,
                max_new_tokens=budget,
                return_dict_in_generate=True,
                output_scores=True,
            )
        sequences = out.sequences
        scores = self.model.compute_transition_scores(sequences, out.scores, normalize_logits=True)
        texts = self.processor.batch_decode(sequences, skip_special_tokens=True)
        results = []
        for i, text in enumerate(texts):
            token_scores = scores[i]
            finite = token_scores[torch.isfinite(token_scores) & (token_scores != 0)]
            avg = float(finite.mean()) if finite.numel() else float("-inf")
            results.append((text.strip(), avg))
        return results

    def label(self, batch: dict[str, Any]) -> list[PseudoLabel]:
        return whisper_labels(self._generate, batch["audio"], self.whisper_task)


def whisper_labels(generate, audio, whisper_task: str) -> list[PseudoLabel]:
    """Pseudo-labels of a Whisper-like teacher: ``generate(audio, task)`` gives (text, average
    log-prob) per item; the confidence is exp(average log-prob); for ``translate`` the source
    transcript comes from a second, ``transcribe`` pass (the AST CTC target)."""
    main = generate(audio, whisper_task)
    sources = generate(audio, "transcribe") if whisper_task == "translate" else None
    labels = []
    for i, (text, avg_logprob) in enumerate(main):
        confidence = math.exp(avg_logprob) if math.isfinite(avg_logprob) else 0.0
        labels.append(
            PseudoLabel(
                text=text,
                nbest=[(text, avg_logprob)],
                confidence=confidence,
                src_text=sources[i][0] if sources else None,
            )
        )
    return labels
