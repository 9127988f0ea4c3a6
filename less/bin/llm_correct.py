"""Stage 7: correct pseudo-labels with an LLM (LESS), or rescore the N-best with an LM.

    python -m less.bin.llm_correct \\
        --in-cuts data/pl/iter1/unsup_wild_cuts_pl.jsonl.gz \\
        --out-cuts data/pl/iter1/unsup_wild_cuts_llm.jsonl.gz \\
        --task ast --lang en --backend hf --model builtin:smollm2 --batch-size 8

    python -m less.bin.llm_correct ... --backend openai \\
        --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct \\
        --api-key-env OPENAI_API_KEY --max-concurrency 32

    python -m less.bin.llm_correct ... --task asr --lang zh --mode rescore \\
        --backend hf --model exp/text_lm --lm-weight 0.5

Each cut's ``supervision.custom["pl"]`` gains ``"llm": {"model", "prompt_sha", "text",
"status", "mode"}``. Answers are cached in ``--cache`` (default ``llm_cache.jsonl``
beside the output) as they arrive: rerun the same command after a crash, Ctrl-C or
kill and only the missing answers are asked. Requests that failed for good leave
the cut with ``status = "failed:<reason>"`` and the teacher's text; the stage is
then not marked finished, so a rerun asks those again (``--fail-fast`` stops at the
first failure instead). A finished output is skipped unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from less.llm.base import LengthBudget, LLMBackend
from less.llm.cleaning import CleaningConfig
from less.llm.correct import MODES, CorrectionConfig, Corrector, LLMRequestFailed
from less.utils import done_marker, save_cuts_atomic, setup_logging, write_json_atomic

logger = logging.getLogger("less.bin.llm_correct")

DEFAULT_LANG = {"asr": "zh", "ast": "en"}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    io = parser.add_argument_group("input/output")
    io.add_argument("--in-cuts", required=True, help="cuts with supervision.custom['pl'] (hyp, nbest)")
    io.add_argument("--out-cuts", required=True, help="output cuts with pl['llm'] added")
    io.add_argument("--cache", default=None,
                    help="answer cache (JSONL); default: llm_cache.jsonl in the output's directory")
    io.add_argument("--no-cache", action="store_true", help="do not read or write a cache")
    io.add_argument("--report", default=None,
                    help="JSON report; default: the output name with .report.json instead of .jsonl.gz")
    io.add_argument("--log-file", default=None, help="default: log/llm_correct[-<shard>].log beside the output")
    io.add_argument("--num-shards", type=int, default=1, help="split the input into this many contiguous shards")
    io.add_argument("--shard-id", type=int, default=0, help="which shard to process (0-based)")
    io.add_argument("--overwrite", action="store_true", help="redo a finished output")
    io.add_argument("--fail-fast", action="store_true",
                    help="stop with an error at the first request that fails for good (default: mark the "
                         "cut failed, keep the teacher's text, go on)")

    task = parser.add_argument_group("task and prompt")
    task.add_argument("--task", choices=("asr", "ast"), default="asr",
                      help="asr: transcripts (Mandarin prompt); ast: English translations (English prompt)")
    task.add_argument("--lang", choices=("zh", "en", "es"), default=None,
                      help="language of the pseudo-labels; default: zh for asr, en for ast")
    task.add_argument("--mode", choices=MODES, default="correct",
                      help="correct: the LLM rewrites the 1-best (paper); rescore: the LM scores the N-best")
    task.add_argument("--prompt-template", default=None,
                      help="template file replacing the packaged less/llm/prompts/<task>_<lang>.txt")
    task.add_argument("--nbest-in-prompt", type=int, default=0,
                      help="show up to N teacher hypotheses in the prompt (0: only the 1-best)")
    task.add_argument("--min-length-ratio", type=float, default=0.5,
                      help="reject answers shorter than this times the hypothesis (in scoring units)")
    task.add_argument("--max-length-ratio", type=float, default=2.0,
                      help="reject answers longer than this times the hypothesis (in scoring units)")
    task.add_argument("--max-new-tokens-ratio", type=float, default=2.0,
                      help="answer budget: margin + ratio * tokens of the hypothesis")
    task.add_argument("--max-new-tokens-margin", type=int, default=16,
                      help="answer budget: tokens allowed on top of ratio * tokens of the hypothesis")
    task.add_argument("--max-new-tokens", type=int, default=512, help="upper bound of the answer budget")

    rescore = parser.add_argument_group("rescore mode")
    rescore.add_argument("--lm-weight", type=float, default=0.5,
                         help="combined score = teacher score + lm_weight * LM log-prob")
    rescore.add_argument("--length-norm", action="store_true",
                         help="divide the LM log-prob by the hypothesis length in scoring units")
    rescore.add_argument("--score-prefix", default="", help="text the LM sees before each hypothesis")
    rescore.add_argument("--no-normalize-for-scoring", action="store_true",
                         help="score hypotheses as written instead of less.data.text.normalize()d")
    rescore.add_argument("--no-score-eos", action="store_true",
                         help="do not score the end-of-sentence token after each hypothesis")

    model = parser.add_argument_group("model")
    model.add_argument("--backend", choices=("hf", "openai"), default="hf",
                       help="hf: transformers in this process; openai: an OpenAI-compatible HTTP server")
    model.add_argument("--model", required=True,
                       help="hf: local dir, hub id, path to a .gguf, or builtin:smollm2; openai: served model name")
    model.add_argument("--gguf-file", default=None, help="hf: GGUF file name inside --model (a dir or hub repo)")
    model.add_argument("--device", default="auto", help="hf: cpu, cuda, cuda:1, or auto")
    model.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                       help="hf: auto = bf16 (fp16 without bf16) on GPU, fp32 on CPU")
    model.add_argument("--batch-size", type=int, default=8, help="hf: prompts per generate() batch")
    model.add_argument("--num-threads", type=int, default=0,
                       help="hf: torch CPU threads (0: torch's default); 1 is often faster on a busy machine")
    model.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="openai: server URL up to /v1")
    model.add_argument("--api-key-env", default="OPENAI_API_KEY",
                       help="openai: NAME of the environment variable holding the API key (never logged)")
    model.add_argument("--max-concurrency", type=int, default=8, help="openai: requests in flight")
    model.add_argument("--timeout", type=float, default=120.0, help="openai: read timeout of one attempt (s)")
    model.add_argument("--connect-timeout", type=float, default=10.0, help="openai: connect timeout (s)")
    model.add_argument("--max-retries", type=int, default=5,
                       help="openai: retries after the first attempt (429/5xx/timeouts/bad JSON)")
    model.add_argument("--backoff-base", type=float, default=1.0,
                       help="openai: first retry waits ~this many seconds, doubling each time (with jitter)")
    return parser


def build_backend(args: argparse.Namespace) -> LLMBackend:
    budget = LengthBudget(args.max_new_tokens_ratio, args.max_new_tokens_margin, args.max_new_tokens)
    if args.backend == "hf":
        from less.llm.hf import HFBackend, HFConfig

        return HFBackend(HFConfig(model=args.model, gguf_file=args.gguf_file, device=args.device,
                                  dtype=args.dtype, batch_size=args.batch_size, length_budget=budget,
                                  num_threads=args.num_threads or None))
    from less.llm.openai_http import HTTPConfig, OpenAIHTTPBackend

    return OpenAIHTTPBackend(HTTPConfig(
        base_url=args.base_url, model=args.model, api_key_env=args.api_key_env,
        max_concurrency=args.max_concurrency, connect_timeout=args.connect_timeout, timeout=args.timeout,
        max_retries=args.max_retries, backoff_base=args.backoff_base, length_budget=budget,
    ))


def _shard(cuts: list, num_shards: int, shard_id: int) -> list:
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"--shard-id must be in [0, {num_shards}), got {shard_id}")
    begin = len(cuts) * shard_id // num_shards
    end = len(cuts) * (shard_id + 1) // num_shards
    return cuts[begin:end]


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".json.gz", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    lang = args.lang or DEFAULT_LANG[args.task]
    out_path = Path(args.out_cuts)
    shard_tag = f"-{args.shard_id}-of-{args.num_shards}" if args.num_shards > 1 else ""
    log_file = args.log_file or out_path.parent / "log" / f"llm_correct{shard_tag}.log"
    setup_logging(log_file)
    marker = done_marker(out_path)
    if out_path.exists() and marker.exists() and not args.overwrite:
        logger.info("%s is finished (%s exists); skipping (use --overwrite to redo)", out_path, marker.name)
        return 0
    marker.unlink(missing_ok=True)

    from lhotse import CutSet

    from less.llm.cache import AnswerCache

    all_cuts = list(CutSet.from_file(args.in_cuts))
    cuts = _shard(all_cuts, args.num_shards, args.shard_id)
    logger.info("%s: %d cuts (shard %d of %d: %d cuts)", args.in_cuts, len(all_cuts), args.shard_id,
                args.num_shards, len(cuts))
    config = CorrectionConfig(
        task=args.task, lang=lang, mode=args.mode, prompt_template=args.prompt_template,
        nbest_in_prompt=args.nbest_in_prompt,
        cleaning=CleaningConfig(min_length_ratio=args.min_length_ratio, max_length_ratio=args.max_length_ratio),
        lm_weight=args.lm_weight, length_norm=args.length_norm, score_prefix=args.score_prefix,
        normalize_for_scoring=not args.no_normalize_for_scoring, append_eos=not args.no_score_eos,
        fail_fast=args.fail_fast,
    )
    cache_path = None if args.no_cache else Path(args.cache or out_path.parent / "llm_cache.jsonl")
    cache = AnswerCache(cache_path)
    backend = build_backend(args)
    try:
        corrector = Corrector(backend, config, cache)
        corrected = corrector.run(cuts)
    except KeyboardInterrupt:
        logger.warning("interrupted: %d answers are safe in %s; rerun the same command to resume",
                       len(cache), cache_path)
        logging.shutdown()
        # Threads may be blocked on the network for up to --timeout; answers are already
        # fsync-ed, so there is nothing left to flush: leave at once.
        os._exit(130)
    except LLMRequestFailed as error:
        logger.error("%s", error)
        return 1
    finally:
        cache.close()
        backend.close()
    save_cuts_atomic(CutSet.from_cuts(corrected), out_path)
    report = corrector.report
    report.log()
    report_path = Path(args.report) if args.report else out_path.parent / f"{_stem(out_path)}.report.json"
    write_json_atomic(report_path, {
        **report.to_dict(), "in_cuts": args.in_cuts, "out_cuts": str(out_path), "model": backend.model_id,
        "mode": args.mode, "prompt_sha": corrector.prompt_sha, "shard": [args.shard_id, args.num_shards],
    })
    logger.info("wrote %s (%d cuts) and %s", out_path, len(corrected), report_path)
    if report.failures:
        logger.warning("%d cuts failed (%s); they keep the teacher's text. Rerun the same command to ask "
                       "them again: answered cuts come from the cache", report.failures, report.failure_reasons)
    else:
        marker.touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
