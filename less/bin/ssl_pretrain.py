"""Self-supervised pretraining of the Zipformer encoder on (unlabeled) audio: BEST-RQ, BiRQ or SpeechLM-P.

Methods (details and the choices behind every default: :mod:`less.ssl.model`):

* ``--method bestrq``: masked prediction of random-projection codes of the normalised
  input (Chiu et al., 2022);
* ``--method birq``: BEST-RQ's anchoring labels plus enhanced labels made by the model
  itself: codes of an intermediate stack's output on the unmasked input, selected with a
  straight-through Gumbel-softmax so the label generator (the lower stacks) is trained
  end to end; the loss ``enhanced + anchor_weight * anchoring`` is the first-order
  penalty form of the bilevel problem of arXiv 2509.15430;
* ``--method speechlm``: SpeechLM-P (:mod:`less.ssl.speechlm`): masked prediction of
  phoneme units (``less.bin.speechlm_units``) at the encoder and at a shared unit encoder,
  random swapping, and UCTC on the unpaired text corpus; fine-tune with the unit encoder
  and the CTC head: ``--model-overrides '{"unit_encoder_layers": 2}' --init-encoder-from
  <exp>/epoch-N.pt --init-prefixes encoder_embed.,encoder.,unit_encoder.,ctc_output.``

Speech-image grounding beside any of the first two (FaST-VGS+-style, as in arXiv
2509.17523; :mod:`less.ssl.grounding`): ``--visual-images DIR`` (the output of
``less.bin.render_scenes``) and ``--visual-cuts`` (cut sets with features whose utterances
have scenes, e.g. ``train_sup`` of one or both languages) add, on every ``--visual-every``-th
step, a paired batch of (utterance, scene image) to the step: its loss becomes
``ssl(audio batch) + --visual-weight * InfoNCE(paired batch)``.  The InfoNCE is symmetric,
on an attention pooling of the ``--visual-stack`` frames (unmasked input, encoder in eval
mode: no channel masking or layer skipping on this pass) and a small image encoder, with a
learnable temperature; utterances of the same scene are no negatives of each other.  The paired audio gets no SSL loss by default
(``--visual-ssl-weight 0``: the SSL stream, hence the audio the SSL objective sees, is the
same with and without grounding, so the two runs differ by the grounding alone; FaST-VGS+
trains its paired speech with both objectives: ``--visual-ssl-weight 1``).  With
``--visual-valid-cuts`` every validation also logs the InfoNCE and speech -> image R@1/R@5.

Languages: several ``--train-cuts`` are interleaved by ``CutSet.mux`` (weights
``--train-weights``, default equal: the smaller set is exhausted first and the rest of the
epoch is the larger one); several ``--visual-cuts`` are concatenated and shuffled together
each pass (each language contributes in proportion to its size), e.g. a bilingual run::

    python -m less.bin.ssl_pretrain --method bestrq \
        --train-cuts data/fbank/mini-asr_cuts_unsup_wild.jsonl.gz \
        --train-cuts data/fbank/mini-ast_cuts_unsup_wild.jsonl.gz \
        --visual-images data/scenes --visual-cuts data/fbank/mini-asr_cuts_train_sup.jsonl.gz \
        --visual-cuts data/fbank/mini-ast_cuts_train_sup.jsonl.gz \
        --visual-valid-cuts data/fbank/mini-asr_cuts_dev.jsonl.gz --exp-dir exp/ssl/bestrq-vgs

Cuts need features (stage 2) and one supervision each; ``text`` may be None.

Several GPUs: ``torchrun --nproc-per-node N -m less.bin.ssl_pretrain ... --dtype bf16`` (DDP;
``--max-duration`` is per rank, the schedules count the audio of all ranks; not with
``--visual-images``).

Files in ``--exp-dir`` as for ``less.bin.train``: ``epoch-N.pt``, ``checkpoint-<batch>.pt``,
``log/``, ``tensorboard/`` (per batch: losses, masked-frame accuracies, code perplexity of
the anchoring and enhanced labels, temperature, learning rate).  A rerun resumes from the
newest checkpoint exactly (mid-epoch included); a finished run exits at once.

Fine-tuning from the pretrained encoder::

    python -m less.bin.ssl_pretrain --method birq --train-cuts data/fbank/mini-asr_cuts_unsup_wild.jsonl.gz \\
        --exp-dir exp/ssl/birq --model xs --num-epochs 10
    python -m less.bin.train ... --model xs --init-encoder-from exp/ssl/birq/epoch-10.pt
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from less.data.datamodule import DataConfig
from less.loop import add_loop_arguments
from less.ssl.grounding import GroundingConfig
from less.ssl.model import LABEL_SOURCES, METHODS, SslObjectiveConfig
from less.ssl.quantizer import NORM_MODES
from less.ssl.speechlm import SpeechLmConfig
from less.ssl.trainer import SslConfig, run_pretraining
from less.utils import cli_parser, config_options


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    d = SslConfig()
    o = SslObjectiveConfig()
    p.add_argument("--method", choices=METHODS, default=o.method)
    add_loop_arguments(
        p,
        d,
        train_help="cut set with features (repeatable)",
        model_overrides_help="JSON of configuration fields to change (use the same in fine-tuning)",
    )
    p.add_argument("--valid-cuts", help="cut set for a validation loss after each epoch")
    p.add_argument(
        "--dtype",
        choices=["auto", "fp32", "bf16", "fp16"],
        default=d.dtype,
        help="autocast dtype of the forward pass (fp16 with a gradient scaler; the quantizers' "
        "labels stay fp32); auto: bf16 on a CPU with native bf16, else fp32",
    )
    p.add_argument(
        "--ref-duration",
        type=float,
        default=d.ref_duration,
        help="schedule batch count = batches * max_duration / ref_duration (model schedules, "
        "Gumbel temperature, enhanced warm-up)",
    )

    g = p.add_argument_group("labels and masking (both methods)")
    config_options(
        g,
        o,
        choices={"label_norm": NORM_MODES},
        label_norm="feature normalisation before quantisation: per utterance, per batch, or none "
        "(none collapses the labels onto a few codes)",
        code_dim="random projection output dimension",
        codebook_size=None,
        num_codebooks=None,
        quantizer_seed="seed of the frozen projections and codebooks",
        mask_prob="probability that a span starts at a 25 Hz label frame",
        mask_span="span length in label frames (40 ms each)",
        mask_noise_std="masked frames: utterance mean + this * utterance std * N(0, 1)",
    )

    b = p.add_argument_group("BiRQ")
    config_options(
        b,
        o,
        choices={"enhanced_label_source": LABEL_SOURCES},
        enhanced_stack="Zipformer stack (0-based) whose output on the unmasked input gives the "
        "enhanced labels",
        enhanced_code_dim=None,
        enhanced_codebook_size=None,
        enhanced_num_codebooks=None,
        anchor_weight="gamma: penalty weight of the anchoring (BEST-RQ) loss",
        enhanced_weight="weight of the enhanced loss",
        enhanced_start_batches="schedule batches of BEST-RQ alone before the enhanced labels start",
        enhanced_warmup_batches="schedule batches over which the enhanced weight then ramps up "
        "from 0",
        gumbel_temp_start=None,
        gumbel_temp_end=None,
        gumbel_temp_batches="schedule batches of the geometric temperature decay",
        gumbel_noise_in_forward="hard label = argmax of the noisy logits (textbook) instead of "
        "the nearest code",
        enhanced_label_grad="let gradients flow through the enhanced labels into the lower stacks",
        label_grad_scale="scale of the gradient through the enhanced labels (not of their value)",
        diversity_weight="weight of a wav2vec 2.0-style code-diversity penalty on the enhanced "
        "quantizer (0: off, as in the paper as far as we know)",
        anchor_weight_end="penalty schedule: the anchor weight grows geometrically to this "
        "(default: constant)",
        anchor_weight_batches="schedule batches of that growth, from --enhanced-start-batches",
        enhanced_label_source="online: the enhanced labels come from the network being trained, "
        "with gradients through the straight-through Gumbel-softmax (the paper's "
        "self-labelling); ema: from a momentum copy of it, without gradients (data2vec-style; "
        "cannot be pulled into a collapse)",
        ema_decay="momentum of the ema label generator (a plain copy before "
        "--enhanced-start-batches)",
        diversity_temperature="softmax temperature of the soft code assignments the diversity "
        "penalty sees",
    )

    s = p.add_argument_group("SpeechLM (units from less.bin.speechlm_units)")
    sd = SpeechLmConfig()
    s.add_argument(
        "--unit-dir",
        help="output directory of less.bin.speechlm_units (units, speech and text units)",
    )
    s.add_argument(
        "--lang-dir", help="character tokens of the UCTC head (the fine-tuning model's lang dir)"
    )
    config_options(
        s,
        sd,
        unit_encoder_layers="Transformer layers of the shared unit encoder (fine-tune with the "
        "same in --model-overrides)",
    )
    config_options(
        s,
        sd,
        prefix="unit",
        mask_prob="span start probability per 25 Hz frame, speech and text (0.16 x 5 frames: "
        "~58 %% masked)",
        mask_span="span length in 25 Hz frames",
    )
    config_options(
        s,
        sd,
        swap_prob="random swapping: span start probability of the swap mask (masked frames "
        "never swap)",
        swap_span=None,
        text_weight="weight of UCTC on the text batches (0: SpeechLM-P without text)",
    )

    v = p.add_argument_group("speech-image grounding (less.ssl.grounding; bestrq and birq)")
    vd = GroundingConfig()
    v.add_argument(
        "--visual-images", help="output directory of less.bin.render_scenes (scenes.jsonl, images/)"
    )
    v.add_argument(
        "--visual-cuts",
        action="append",
        default=[],
        help="cut set with features whose utterances have scenes (repeatable: concatenated)",
    )
    v.add_argument(
        "--visual-valid-cuts",
        action="append",
        default=[],
        help="validation pairs: InfoNCE and speech->image R@1/R@5 after each validation (repeatable)",
    )
    config_options(
        v,
        vd,
        prefix="visual",
        weight="loss += this * InfoNCE on paired steps",
        every="a paired batch on every K-th step (2: alternating paired and audio-only steps)",
        stack="encoder layer pooled into the speech embedding: final (25 Hz output), embed, or a "
        "stack index 0..num_stacks-1 (50 Hz)",
        dim="shared speech/image embedding dimension",
        temperature="initial InfoNCE temperature (learned, clamped to >= 0.01 as in CLIP)",
        ssl_weight="SSL loss on the paired audio too, with this weight (0: only the --train-cuts "
        "stream)",
        max_duration="seconds of audio per paired batch (0: --max-duration)",
    )
    return p


VISUAL_FLAGS = {
    "images": "visual_images",
    "cuts": "visual_cuts",
    "valid_cuts": "visual_valid_cuts",
    "weight": "visual_weight",
    "every": "visual_every",
    "stack": "visual_stack",
    "dim": "visual_dim",
    "temperature": "visual_temperature",
    "ssl_weight": "visual_ssl_weight",
    "max_duration": "visual_max_duration",
}
SPEECHLM_FLAGS = {
    "unit_encoder_layers": "unit_encoder_layers",
    "mask_prob": "unit_mask_prob",
    "mask_span": "unit_mask_span",
    "swap_prob": "swap_prob",
    "swap_span": "swap_span",
    "text_weight": "text_weight",
    "mask_noise_std": "mask_noise_std",
}


def config_from_args(args: argparse.Namespace) -> SslConfig:
    values = vars(args)
    objective = SslObjectiveConfig(**{f.name: values[f.name] for f in fields(SslObjectiveConfig)})
    data = DataConfig(
        spec_augment=False,
        **{f.name: values[f.name] for f in fields(DataConfig) if f.name in values},
    )
    speechlm = SpeechLmConfig(**{field: values[flag] for field, flag in SPEECHLM_FLAGS.items()})
    grounding = GroundingConfig(**{field: values[flag] for field, flag in VISUAL_FLAGS.items()})
    names = {f.name for f in fields(SslConfig)} - {"objective", "data", "speechlm", "grounding"}
    return SslConfig(
        objective=objective,
        data=data,
        speechlm=speechlm,
        grounding=grounding,
        **{k: v for k, v in values.items() if k in names},
    )


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    run_pretraining(config_from_args(args))


if __name__ == "__main__":
    main()
