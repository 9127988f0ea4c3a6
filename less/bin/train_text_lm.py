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
from less.utils import config_from_args, config_options, done_marker, setup_logging

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
        "--lr", type=float, default=defaults.learning_rate, help="peak learning rate (AdamW)"
    )
    config_options(
        parser,
        defaults,
        epochs="passes over the training text",
        max_steps="stop after this many steps (overrides --epochs)",
        batch_size="sentences per step",
        warmup_steps="linear warm-up, then cosine decay to 10%% of --lr",
        max_len="tokens per sentence at most",
        vocab_size="BPE vocabulary (es/en)",
        min_char_count="zh: rarer characters become <unk>",
        heldout_fraction="share of sentences held out for perplexity (at most 2000)",
        eval_every="steps between evaluations",
        seed="shuffling, held-out split and init",
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=1,
        help="torch CPU threads; 0 = torch's default. Small models are overhead-bound: on a "
        "busy 2-core machine 1 thread measured ~9x faster than 2",
    )
    config_options(
        parser,
        defaults,
        choices={"objective": ("lm", "correct"), "confusions": CONFUSIONS},
        objective="lm: a language model (rescore mode); correct: a correction LM trained on "
        "sentences with simulated recognition errors (correct mode; zh)",
        copies="correct: noisy versions of every training sentence",
        max_error_rate="correct: each noisy sentence's character error rate is drawn from [0, "
        "this]; with --confusions seed-errors the measured rates are capped at this. Default: "
        "0.4, or 1.0 (no cap) with seed-errors",
        confusions="correct: where substitutions come from: espeak (similar-sounding characters "
        "from espeak-ng pronunciations), pycorrector (its same-pinyin lists; pip install "
        "--no-deps pycorrector), seed-errors (the seed model's measured dev errors, see "
        "--error-stats; also sets the error rates and the sub/del/ins shares), none (random "
        "characters)",
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
        "--measured-only",
        action="store_true",
        help="seed-errors: substitute and insert only measured characters (no back-off)",
    )
    config_options(
        parser,
        defaults,
        choices={
            "backoff_confusions": ("espeak", "pycorrector", "none"),
            "precision": ("bf16", "fp32"),
            "attn_implementation": ("eager", "sdpa"),
        },
        backoff_confusions="seed-errors: similar-sounding characters for characters without "
        "measured substitutions",
        precision="bf16: autocast matmuls to bf16 on CPUs with avx512_bf16/AMX (fp32 elsewhere); "
        "with eager attention 2.6x the steps/s of the old fp32+sdpa path on the mini corpus' "
        "CPU; fp32: the old full-precision training",
        attn_implementation="attention kernel in training; eager: 1.6x the steps/s of sdpa (CPU "
        "flash attention) under bf16 for these short sequences, the same under fp32; sdpa: the "
        "old one",
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
    config = config_from_args(
        TextLMTrainConfig,
        args,
        size=args.config,
        learning_rate=args.lr,
        error_stats=tuple(args.error_stats),
        measured_only=args.measured_only,
    )
    train_text_lm(sentences, out_dir, config)
    marker.touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
