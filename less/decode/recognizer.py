"""A trained CTC/AED model ready to decode: used by ``less.bin.decode`` and by the
own-checkpoint teacher of pseudo-labelling, so both decode the same way.

Methods (icefall's names):

* ``ctc-greedy-search``: best path, repeats merged, blanks removed;
* ``ctc-prefix-beam-search``: N-best label sequences with their total CTC log-probability;
* ``attention-decoder-rescoring``: the CTC N-best re-ranked with the attention decoder,
  one setting per ``--attention-scale`` (needs the decoder to share the CTC vocabulary,
  i.e. ASR);
* ``ctc-wfst``: Viterbi search of the CTC output through a graph with an n-gram LM
  (:mod:`less.decode.wfst`, WeNet's TLG for character units; ``DecodeOptions.wfst``);
* ``attention-beam-search``: beam search with the decoder; for AST this produces the
  translation; joint with CTC prefix scores (``ctc_weight``) when the CTC vocabulary is
  the decoder's.

For AST, CTC methods produce the source-language transcript (Spanish), attention beam
search the translation (English); each :class:`Hypothesis` of AST also carries the CTC
transcript in ``src_text``, which the student needs as its CTC target.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from less.checkpoint import averaged_model_state, load_checkpoint
from less.decode.attention import attention_beam_search, attention_rescoring, attention_scale_key
from less.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search, nbest_posteriors

log = logging.getLogger("less.decode")

METHODS = (
    "ctc-greedy-search",
    "ctc-prefix-beam-search",
    "ctc-wfst",
    "attention-decoder-rescoring",
    "attention-beam-search",
)


@dataclass
class DecodeOptions:
    beam_size: int = 10
    nbest: int = 10
    attention_scales: Sequence[float] = (1.0,)
    ctc_weight: float = 0.0  # joint CTC weight of attention beam search (ASR only)
    max_len_ratio: float = 0.5  # output tokens per 25 Hz encoder frame; speech has < 0.3
    length_bonus: float = 0.0
    normalise_length: bool = False
    wfst: Any = None  # ctc-wfst: a less.decode.wfst.CtcWfstDecoder (graph with the LM)
    lm_scales: Sequence[float] = ()  # ctc-wfst: one search per LM weight (default: the decoder's)


@dataclass
class Hypothesis:
    """One utterance's result: the 1-best text, the N-best ``(text, score)`` and a confidence."""

    text: str
    nbest: list[tuple[str, float]] = field(default_factory=list)
    confidence: float = 1.0
    src_text: str | None = None


class Recognizer:
    def __init__(
        self,
        model: torch.nn.Module,
        task: str,
        ctc_tokenizer,
        decoder_tokenizer,
        device: torch.device | str = "cpu",
        dtype: str = "fp32",
    ):
        self.model = model.to(device).eval()
        self.task = task
        self.ctc_tokenizer = ctc_tokenizer
        self.decoder_tokenizer = decoder_tokenizer
        self.device = torch.device(device)
        if dtype not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"unknown dtype {dtype!r}: fp32, bf16 or fp16")
        self.dtype = dtype  # autocast of the encoder; searches and scores stay in fp32

    @classmethod
    def from_config(
        cls,
        train_config: dict[str, Any],
        state: dict[str, torch.Tensor],
        device: torch.device | str = "cpu",
        dtype: str = "fp32",
    ) -> Recognizer:
        from less.model.spec import ModelSpec

        spec = ModelSpec.from_train_config(train_config)
        ctc_tokenizer, decoder_tokenizer = spec.tokenizers()
        model = spec.build(ctc_tokenizer, decoder_tokenizer)
        model.load_state_dict(state)
        return cls(model, spec.task, ctc_tokenizer, decoder_tokenizer, device, dtype)

    @classmethod
    def from_exp_dir(
        cls,
        exp_dir: str | Path,
        epoch: int,
        avg: int,
        use_averaged_model: bool,
        device: torch.device | str = "cpu",
        dtype: str = "fp32",
    ) -> Recognizer:
        state, config = averaged_model_state(exp_dir, epoch, avg, use_averaged_model)
        return cls.from_config(config, state, device, dtype)

    @classmethod
    def from_file(
        cls, path: str | Path, device: torch.device | str = "cpu", dtype: str = "fp32"
    ) -> Recognizer:
        """Any checkpoint or export with ``model`` and ``config`` (e.g. ``pretrained.pt``)."""
        ckpt = load_checkpoint(path)
        return cls.from_config(ckpt["config"], ckpt["model"], device, dtype)

    # ------------------------------------------------------------------ helpers
    def settings(self, method: str, opts: DecodeOptions) -> list[str]:
        """Result names of a method: one per attention scale for rescoring, else one ``""``."""
        if method == "attention-decoder-rescoring":
            return [attention_scale_key(s) for s in opts.attention_scales]
        if method == "ctc-wfst" and opts.wfst is not None:
            return [wfst_key(s) for s in (opts.lm_scales or (opts.wfst.lm_scale,))]
        return [""]

    def _ctc_text(self, tokens: Sequence[int]) -> str:
        return self.ctc_tokenizer.decode(tokens)

    def _decoder_text(self, tokens: Sequence[int]) -> str:
        return self.decoder_tokenizer.decode(tokens)

    def _decoder_fn(self):
        return self.model.decoder_logits

    @torch.no_grad()
    def encode(
        self, feats: torch.Tensor, feat_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output (fp32) of a padded batch, under the recognizer's autocast dtype."""
        enabled = self.dtype != "fp32"
        dtype = torch.bfloat16 if self.dtype == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype, enabled=enabled):
            enc_out, enc_lens = self.model.encode(feats.to(self.device), feat_lens.to(self.device))
        return enc_out.float(), enc_lens

    @torch.no_grad()
    def decode(
        self,
        feats: torch.Tensor,
        feat_lens: torch.Tensor,
        method: str,
        opts: DecodeOptions | None = None,
    ) -> dict[str, list[Hypothesis]]:
        """Decode a padded batch; returns ``{setting: [Hypothesis per utterance]}``."""
        return self.decode_encoded(*self.encode(feats, feat_lens), method, opts)

    @torch.no_grad()
    def decode_encoded(
        self,
        enc_out: torch.Tensor,
        enc_lens: torch.Tensor,
        method: str,
        opts: DecodeOptions | None = None,
    ) -> dict[str, list[Hypothesis]]:
        """:meth:`decode` from :meth:`encode`'s output: several methods share one encoder pass."""
        opts = opts or DecodeOptions()
        if method not in METHODS:
            raise ValueError(f"unknown decoding method {method!r}; choose from {METHODS}")
        model = self.model
        ctc_log_probs = model.ctc_log_probs(enc_out)
        greedy_src = None
        if self.task == "ast":
            greedy_src = [self._ctc_text(t) for t in ctc_greedy_search(ctc_log_probs, enc_lens)]

        if method == "ctc-greedy-search":
            hyps = ctc_greedy_search(ctc_log_probs, enc_lens)
            texts = [self._ctc_text(t) for t in hyps]
            return {
                "": [
                    Hypothesis(text=t, nbest=[(t, 0.0)], src_text=t if self.task == "ast" else None)
                    for t in texts
                ]
            }

        if method == "ctc-wfst":
            if opts.wfst is None:
                raise ValueError(
                    "ctc-wfst needs a decoding graph: give an n-gram LM (less.bin.decode --lm)"
                )
            by_scale: dict[str, list[Hypothesis]] = {}
            for scale in opts.lm_scales or (opts.wfst.lm_scale,):
                out = []
                for i, n in enumerate(enc_lens.tolist()):
                    text = self._ctc_text(
                        opts.wfst.decode(ctc_log_probs[i, :n].float().cpu().numpy(), scale)
                    )
                    out.append(
                        Hypothesis(
                            text=text,
                            nbest=[(text, 0.0)],
                            src_text=text if self.task == "ast" else None,
                        )
                    )
                by_scale[wfst_key(scale)] = out
            return by_scale

        if method == "ctc-prefix-beam-search":
            nbest = ctc_prefix_beam_search(ctc_log_probs, enc_lens, opts.beam_size, opts.nbest)
            out = []
            for utt in nbest:
                listed = [(self._ctc_text(tokens), score) for tokens, score in utt]
                top = listed[0][0] if listed else ""
                out.append(
                    Hypothesis(
                        text=top,
                        nbest=listed,
                        confidence=_top_posterior(utt),
                        src_text=top if self.task == "ast" else None,
                    )
                )
            return {"": out}

        if model.attention_decoder is None:
            raise ValueError(f"{method} needs an attention decoder; this model has none")

        if method == "attention-decoder-rescoring":
            if self.task == "ast":
                raise ValueError(
                    "attention-decoder-rescoring rescores CTC hypotheses with the decoder, "
                    "which needs one vocabulary; for AST use attention-beam-search"
                )
            nbest = ctc_prefix_beam_search(ctc_log_probs, enc_lens, opts.beam_size, opts.nbest)
            rescored = attention_rescoring(
                nbest,
                enc_out,
                enc_lens,
                self._decoder_fn(),
                model.sos_id,
                model.eos_id,
                attention_scales=opts.attention_scales,
            )
            results: dict[str, list[Hypothesis]] = {}
            for scale, per_utt in rescored.items():
                hyps_out = []
                for hyps in per_utt:
                    listed = [(self._ctc_text(h.tokens), h.score) for h in hyps]
                    hyps_out.append(
                        Hypothesis(
                            text=listed[0][0] if listed else "",
                            nbest=listed,
                            confidence=_top_posterior([(h.tokens, h.score) for h in hyps]),
                        )
                    )
                results[attention_scale_key(scale)] = hyps_out
            return results

        joint = opts.ctc_weight > 0
        if joint and self.task == "ast":
            raise ValueError(
                "joint CTC/attention beam search needs the CTC vocabulary to be the "
                "decoder's; for AST use --ctc-weight 0"
            )
        nbest = attention_beam_search(
            enc_out,
            enc_lens,
            self._decoder_fn(),
            model.sos_id,
            model.eos_id,
            beam_size=opts.beam_size,
            nbest=min(opts.nbest, opts.beam_size),
            max_len_ratio=opts.max_len_ratio,
            length_bonus=opts.length_bonus,
            normalise_length=opts.normalise_length,
            ctc_log_probs=ctc_log_probs if joint else None,
            ctc_lens=enc_lens if joint else None,
            ctc_weight=opts.ctc_weight,
            blank_id=model.blank_id,
            suppress_ids=(model.blank_id,) if model.blank_id != model.eos_id else (),
            incremental=model.attention_decoder,
        )
        out = []
        for utt_index, utt in enumerate(nbest):
            listed = [(self._decoder_text(tokens), score) for tokens, score in utt]
            out.append(
                Hypothesis(
                    text=listed[0][0] if listed else "",
                    nbest=listed,
                    confidence=_top_posterior(utt),
                    src_text=greedy_src[utt_index] if greedy_src else None,
                )
            )
        return {"": out}


def wfst_key(lm_scale: float) -> str:
    """Result name of a ctc-wfst setting (icefall's HLG results: ``lm_scale_0.5``)."""
    return f"lm_scale_{lm_scale}"


def _top_posterior(nbest: Sequence[tuple[Sequence[int], float]]) -> float:
    """Posterior of the 1-best among the N-best (softmax over their scores); 1.0 for a single one."""
    if not nbest:
        return 0.0
    return float(nbest_posteriors([(list(t), s) for t, s in nbest])[0])
