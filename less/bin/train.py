"""Train a Zipformer CTC/attention-decoder model (ASR, or AST with a CTC auxiliary task).

icefall-compatible flags and files: ``--exp-dir --num-epochs --start-epoch --start-batch
--max-duration --base-lr``; ``epoch-N.pt``, ``checkpoint-<batch>.pt`` every
``--save-every-n`` batches (the last ``--keep-last-k`` kept), ``best-valid-loss.pt``, a
running averaged model for ``--use-averaged-model`` decoding, logs in
``<exp-dir>/log/``, tensorboard in ``<exp-dir>/tensorboard/``.

Resuming: with no ``--start-epoch/--start-batch``, a rerun continues from the newest
checkpoint in ``--exp-dir`` (mid-epoch included: the sampler is fast-forwarded to the
exact batch, RNG states restored), so a run killed at any point and restarted reaches
the same weights as one that was never interrupted (CPU, fixed seeds). A finished run
exits at once.

Targets: ``--task asr``: CTC and decoder on the transcript (``--lang-dir``).
``--task ast``: CTC on the source transcript (``--lang-dir``, e.g. Spanish BPE) and the
decoder on ``supervision.custom["translated_text"]["en"]`` (``--decoder-lang-dir``,
English BPE) — speech translation without the ASR-CTC auxiliary task does not converge
on Fisher.

Bad batches: a batch with inf/NaN loss is skipped and counted, and its cut ids logged;
an out-of-memory error names the batch's cuts and durations before re-raising.

System U (``--unsup-cuts``): besides each supervised batch, a batch of the cuts the LESS
filter rejected (``less.bin.filter_pl --annotated-cuts``; cuts marked kept are skipped)
trains on the sequence-level loss of :mod:`less.unsup.loss`, ``-log sum_{c in H(x)}
exp[log p_CTC(c|x) - beta log prior(c) + lambda log p_ngram(c)]`` over the teacher's N-best
and the LLM's text, weighted by ``--unsup-weight``. The unlabeled stream cycles on its
own and resumes exactly with the rest. ASR only.

Multi-GPU: ``torchrun --nproc-per-node N -m less.bin.train ...`` (DDP; ``--dtype bf16``
or ``fp16`` for mixed precision). The CPU path is the default.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from less.data.datamodule import DataConfig
from less.loop import add_loop_arguments
from less.training import TrainConfig, run_training
from less.utils import cli_parser, config_options


def _float_range(text: str) -> tuple[float, float]:
    """'LOW,HIGH' -> (LOW, HIGH), e.g. an SNR or gain range in dB."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. -18,6), got {text!r}")
    low, high = (float(x) for x in parts)
    if low > high:
        raise argparse.ArgumentTypeError(f"range {text!r}: LOW must not exceed HIGH")
    return low, high


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    d = TrainConfig()
    dd = DataConfig()
    p.add_argument("--task", choices=["asr", "ast"], default=d.task)
    add_loop_arguments(
        p,
        d,
        train_help="training cut set (repeatable)",
        model_overrides_help="JSON of configuration fields to change, e.g. "
        "'{\"num_decoder_layers\": 2}'",
    )
    p.add_argument("--valid-cuts", help="validation cut set (valid loss, best-valid-loss.pt)")
    p.add_argument("--lang-dir", default=d.lang_dir, help="CTC tokens (the source transcript)")
    p.add_argument("--decoder-lang-dir", help="decoder tokens for --task ast (English BPE)")
    p.add_argument("--ctc-scale", type=float, help="weight of the CTC loss (default: the model's)")
    p.add_argument(
        "--aed-scale",
        type=float,
        help="weight of the attention-decoder loss (default: the model's)",
    )
    config_options(
        p,
        d,
        choices={"dtype": ["auto", "fp32", "bf16", "fp16"]},
        ref_duration="batch count for schedules = batches * max_duration * world_size / ref_duration",
        average_period=None,
        valid_interval=None,
        dtype="autocast dtype; auto: bf16 on a CPU with native bf16 (AVX512-BF16/AMX: several "
        "times faster than fp32 there), fp32 otherwise (on GPUs choose bf16 or fp16)",
    )
    p.add_argument(
        "--init-from", help="start from this checkpoint's model weights (student from teacher)"
    )
    config_options(
        p,
        d,
        choices={"init_schedule": ["restart", "continue"]},
        init_avg="with --init-from .../epoch-E.pt: start from the average of epochs E-A+1..E "
        "(running averaged model), the model decoding and pseudo-labelling use",
        init_schedule="with --init-from: continue the checkpoint's LR and regularisation schedules "
        "where its training stopped (a student continues its teacher), or restart them from zero",
    )
    p.add_argument(
        "--init-encoder-from", help="initialise only the encoder (e.g. from SSL pretraining)"
    )
    p.add_argument(
        "--init-prefixes",
        type=lambda v: [x for x in v.split(",") if x],
        help="with --init-encoder-from: the module names to take, comma-separated (default "
        "encoder_embed.,encoder.; SpeechLM: encoder_embed.,encoder.,unit_encoder.,ctc_output.)",
    )
    config_options(
        p,
        d,
        encoder_lr_scale="with --init-encoder-from: the learning rate of the modules it loads, "
        "relative to the fresh ones (icefall-based SSL fine-tuning uses 0.05-0.1)",
        freeze_encoder_batches="with --init-encoder-from: the modules it loads stay fixed for "
        "this many batches while the fresh ones learn",
    )
    config_options(
        p,
        dd,
        on_the_fly_feats=None,
        speed_perturb="on-the-fly 0.9x/1.1x speed perturbation (needs --on-the-fly-feats true)",
        spec_augment=None,
    )
    p.add_argument("--noise-cuts", help="noise cut set (with features) mixed into training batches")
    p.add_argument(
        "--noise-snr",
        type=_float_range,
        default=dd.noise_snr,
        help="SNR range in dB of the mixed noise, e.g. 10,20",
    )
    config_options(p, dd, noise_prob="share of cuts that get noise")
    p.add_argument(
        "--volume-db",
        type=_float_range,
        default=dd.volume_db,
        help="volume perturbation: a gain drawn per cut in this dB range, e.g. -18,6 "
        "(Kaldi's 1/8..2); off by default",
    )
    p.add_argument(
        "--unsup-cuts",
        help="system U: cuts with pseudo-label records whose rejected ones "
        "(pl['kept'] false) train on the sequence-level unsupervised loss",
    )
    config_options(
        p,
        d,
        unsup_weight="weight of the unsupervised loss (summed over the unlabeled batch, like the "
        "CTC loss)",
    )
    p.add_argument(
        "--unsup-lm", help="ARPA n-gram LM (less.bin.train_ngram) scoring the hypotheses"
    )
    config_options(
        p,
        d,
        unsup_lm_weight="lambda: scale of log p_ngram(c) (the derivation's value is 1)",
        unsup_prior_weight="beta: scale of the label prior divided out (batch-averaged CTC "
        "posteriors; derivation: 1)",
        unsup_max_duration="seconds of audio per unlabeled batch (0: --max-duration)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    data_names = {f.name for f in fields(DataConfig)}
    values = vars(args)
    data = DataConfig(**{k: v for k, v in values.items() if k in data_names})
    train_names = {f.name for f in fields(TrainConfig)} - {"data"}
    return TrainConfig(data=data, **{k: v for k, v in values.items() if k in train_names})


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    run_training(config_from_args(args))


if __name__ == "__main__":
    main()
