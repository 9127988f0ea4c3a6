"""Train a small causal text LM (Llama, character tokens for zh, BPE otherwise) on CPU.

    python -m less.bin.train_text_lm --text data/lang_char/train_text.txt --lang zh \\
        --out-dir exp/text_lm --config tiny

The output directory loads with ``AutoTokenizer.from_pretrained`` and
``AutoModelForCausalLM.from_pretrained``; ``less.bin.llm_correct --mode rescore
--backend hf --model exp/text_lm`` uses it to rescore the teacher's N-best; with
``--objective correct`` it is a correction LM (:mod:`less.llm.standin.correction_pairs`) that
``llm_correct --mode correct --backend hf --prompt-template
less/llm/prompts/asr_zh_corrector.txt`` uses to rewrite hypotheses.
With ``--confusions seed-errors --error-stats exp/asr/iter0/attention-decoder-rescoring/
recogs-dev-attention_scale_1.0-epoch-30_avg-5.txt`` the simulated errors are the ones the
seed model makes on dev (counted from its decoding; saved as ``error_stats.json`` in
``--out-dir``); test-set result files are refused.
Held-out perplexity is logged before training, every ``--eval-every`` steps and at
the end, and kept in ``train_summary.json``. A finished ``--out-dir`` is skipped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from less.llm.standin.text_lm import (
    CONFUSIONS,
    MODEL_SIZES,
    TextLMTrainConfig,
    read_sentences,
    train_text_lm,
)
from less.utils import done_marker, setup_logging

logger = logging.getLogger("less.bin.train_text_lm")


def get_parser() -> argparse.ArgumentParser:
    defaults = TextLMTrainConfig()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--text",
        action="append",
        required=True,
        help="text file, one sentence per line (repeat the flag for several files)",
    )
    parser.add_argument(
        "--skip-first-field",
        action="store_true",
        help="lines are Kaldi 'utt-id text': drop the first field",
    )
    parser.add_argument(
        "--lang",
        choices=("zh", "es", "en"),
        default="zh",
        help="zh: character tokenizer; es/en: BPE",
    )
    parser.add_argument("--out-dir", required=True, help="where the model and tokenizer are saved")
    parser.add_argument(
        "--config", choices=sorted(MODEL_SIZES), default=defaults.size, help="model size"
    )
    parser.add_argument(
        "--epochs", type=float, default=defaults.epochs, help="passes over the training text"
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop after this many steps (overrides --epochs)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="sentences per step"
    )
    parser.add_argument(
        "--lr", type=float, default=defaults.learning_rate, help="peak learning rate (AdamW)"
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=defaults.warmup_steps,
        help="linear warm-up, then cosine decay to 10%% of --lr",
    )
    parser.add_argument(
        "--max-len", type=int, default=defaults.max_len, help="tokens per sentence at most"
    )
    parser.add_argument(
        "--vocab-size", type=int, default=defaults.vocab_size, help="BPE vocabulary (es/en)"
    )
    parser.add_argument(
        "--min-char-count",
        type=int,
        default=defaults.min_char_count,
        help="zh: rarer characters become <unk>",
    )
    parser.add_argument(
        "--heldout-fraction",
        type=float,
        default=defaults.heldout_fraction,
        help="share of sentences held out for perplexity (at most 2000)",
    )
    parser.add_argument(
        "--eval-every", type=int, default=defaults.eval_every, help="steps between evaluations"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="shuffling, held-out split and init"
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=1,
        help="torch CPU threads; 0 = torch's default. Small models are overhead-bound: on a "
        "busy 2-core machine 1 thread measured ~9x faster than 2",
    )
    parser.add_argument(
        "--objective",
        choices=("lm", "correct"),
        default=defaults.objective,
        help="lm: a language model (rescore mode); correct: a correction LM trained on "
        "sentences with simulated recognition errors (correct mode; zh)",
    )
    parser.add_argument(
        "--copies",
        type=int,
        default=defaults.copies,
        help="correct: noisy versions of every training sentence",
    )
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=None,
        help="correct: each noisy sentence's character error rate is drawn from [0, this]; "
        "with --confusions seed-errors the measured rates are capped at this. Default: "
        "0.4, or 1.0 (no cap) with seed-errors",
    )
    parser.add_argument(
        "--confusions",
        choices=CONFUSIONS,
        default=defaults.confusions,
        help="correct: where substitutions come from: espeak (similar-sounding characters from "
        "espeak-ng pronunciations), pycorrector (its same-pinyin lists; pip install --no-deps "
        "pycorrector), seed-errors (the seed model's measured dev errors, see --error-stats; "
        "also sets the error rates and the sub/del/ins shares), none (random characters)",
    )
    parser.add_argument(
        "--error-stats",
        action="append",
        default=[],
        help="seed-errors: the seed's dev decoding results of less.bin.decode (recogs-dev-*.txt or "
        "errs-dev-*.txt; repeat for several) or a saved error_stats.json; test-set results "
        "are refused",
    )
    parser.add_argument(
        "--backoff-confusions",
        choices=("espeak", "pycorrector", "none"),
        default=defaults.backoff_confusions,
        help="seed-errors: similar-sounding characters for characters without measured "
        "substitutions",
    )
    parser.add_argument(
        "--measured-only",
        action="store_true",
        help="seed-errors: substitute and insert only measured characters (no back-off)",
    )
    parser.add_argument(
        "--precision",
        choices=("bf16", "fp32"),
        default=defaults.precision,
        help="bf16: autocast matmuls to bf16 on CPUs with avx512_bf16/AMX (fp32 elsewhere); with "
        "eager attention 2.6x the steps/s of the old fp32+sdpa path on the mini corpus' CPU; "
        "fp32: the old full-precision training",
    )
    parser.add_argument(
        "--attn-implementation",
        choices=("eager", "sdpa"),
        default=defaults.attn_implementation,
        help="attention kernel in training; eager: 1.6x the steps/s of sdpa (CPU flash "
        "attention) under bf16 for these short sequences, the same under fp32; sdpa: the old one",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="retrain even if --out-dir is finished"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    out_dir = Path(args.out_dir)
    setup_logging(out_dir.parent / "log" / f"train_text_lm-{out_dir.name}.log")
    marker = done_marker(out_dir)
    if out_dir.is_dir() and marker.exists() and not args.overwrite:
        logger.info(
            "%s is finished (%s exists); skipping (use --overwrite to retrain)",
            out_dir,
            marker.name,
        )
        return 0
    marker.unlink(missing_ok=True)
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    sentences = read_sentences(args.text, args.lang, args.skip_first_field)
    logger.info("%d sentences from %s", len(sentences), ", ".join(args.text))
    config = TextLMTrainConfig(
        lang=args.lang,
        size=args.config,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        max_len=args.max_len,
        vocab_size=args.vocab_size,
        min_char_count=args.min_char_count,
        heldout_fraction=args.heldout_fraction,
        eval_every=args.eval_every,
        seed=args.seed,
        objective=args.objective,
        copies=args.copies,
        max_error_rate=args.max_error_rate,
        confusions=args.confusions,
        error_stats=tuple(args.error_stats),
        backoff_confusions=args.backoff_confusions,
        measured_only=args.measured_only,
        precision=args.precision,
        attn_implementation=args.attn_implementation,
    )
    train_text_lm(sentences, out_dir, config)
    marker.touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
