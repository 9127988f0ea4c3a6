#!/usr/bin/env python3
"""LLM correction throughput: each speed setting against the previous one, measured in the same run.

Every setting runs the real ``less.llm.correct.Corrector`` (prompt building, cleaning,
records; no answer cache) over the same cuts with the same model; rounds are
interleaved so load from other processes hits every setting alike. Printed per
setting: cuts/second (median over rounds), the ratio to the previous setting and to
the first one, and how many answers (final status + text) are identical to the first
setting's, because a faster setting that changes answers must say by how much.

* ``hf``: the settings ladder of ``--settings`` (default: today's fp32 batch 8; + the
  shared-prefix KV cache; + bf16 weights; + larger batches), for each model of
  ``--models``. ``builtin:smollm2`` gets the instruction prompt; a base model
  (``builtin:gemma3-270m``) gets the few-shot completion prompt with ``--few-shot``
  worked examples made by corrupting ``SENTENCES`` (bench data, not a corpus).
  ``--load-times`` also times loading the GGUF file directly against loading its
  dequantised copy (:mod:`less.llm.gguf_cache`).
* ``openai``: ``less.llm.testing.FakeChatServer`` on 127.0.0.1 with a simulated latency
  per request, ``--max-concurrency 1`` vs ``N``.

Usage: python tools/bench/llm_throughput.py [--models builtin:smollm2,builtin:gemma3-270m]
       [--settings fp32-b8,fp32-b8-prefix,bf16-b8-prefix,bf16-b16-prefix] [--cuts 16] [--threads 1]
       [--sentences FILE] [--rounds 2] [--load-times] [--skip-hf] [--skip-openai]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from less.llm.correct import CorrectionConfig, Corrector
from less.llm.fewshot import FewShotConfig, WordErrorSimulator
from less.llm.testing import FakeChatServer, make_pl_cuts

BROKEN_ENGLISH = [
    "i has went to the the store yesterday for buy milk",
    "she dont know where is the the station",
    "we was very happy for see you",
    "my brother he work in a hospital since three years",
    "the weather are very cold in this winter",
    "they is my friends from school",
    "he have two dog and one cats",
    "can you tell me where i can to buy a ticket",
    "yesterday i go to the cinema with my wife",
    "the childrens is playing in the park",
    "i am agree with what you said before",
    "there is many people in the street today",
    "how many time you need for finish the work",
    "we goes to the beach every summers",
    "my mother cook very good the rice",
    "i didnt saw him since last week",
]
# Clean sentences the few-shot examples of a base model are made from (bench data only).
SENTENCES = [
    "the teacher bought three new books for the class",
    "we are going to visit my grandmother on sunday",
    "my sister works in a bank in the city",
    "they did not find the keys in the kitchen",
    "last year the company opened two new offices",
    "i would like a cup of coffee with milk",
    "the children played football after school",
    "do you know what time the train leaves",
    "he called his brother yesterday evening",
    "the doctor said that i need to rest",
]


@dataclass(frozen=True)
class Setting:
    name: str
    dtype: str
    batch_size: int
    prefix_cache: bool


def parse_setting(name: str) -> Setting:
    match = re.fullmatch(r"(fp32|bf16)-b(\d+)(-prefix)?", name)
    if not match:
        raise SystemExit(
            f"bad setting {name!r}: expected (fp32|bf16)-b<N>[-prefix], e.g. bf16-b16-prefix"
        )
    dtype = {"fp32": "float32", "bf16": "bfloat16"}[match.group(1)]
    return Setting(name, dtype, int(match.group(2)), bool(match.group(3)))


def _cuts(count: int, sentences_file: str | None, seed: int) -> tuple[object, list[str] | None]:
    """The bench cuts, and the clean sentences they were made from (``None`` for BROKEN_ENGLISH)."""
    if sentences_file is None:
        hypotheses = [BROKEN_ENGLISH[i % len(BROKEN_ENGLISH)] for i in range(count)]
        return make_pl_cuts(hypotheses, prefix="bench", language="es"), None
    else:  # teacher-like errors on real sentences: more variety for the agreement count
        lines = [
            line.strip()
            for line in Path(sentences_file).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        rng = random.Random(seed)
        chosen = rng.sample(lines, min(count, len(lines)))
        simulator = WordErrorSimulator((w for line in lines[:5000] for w in line.split()), "en")
        hypotheses = [
            simulator.corrupt(line, rng.uniform(0.1, 0.4), rng) or line for line in chosen
        ]
    return make_pl_cuts(hypotheses, prefix="bench", language="es"), chosen


def _wer(references: list[str], texts: list[str]) -> float:
    import jiwer

    return 100.0 * jiwer.wer(references, texts)


def _few_shot_file(directory: Path, count: int) -> str:
    rng = random.Random(0)
    simulator = WordErrorSimulator((w for s in SENTENCES for w in s.split()), "en")
    path = directory / "bench_examples.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for index, sentence in enumerate(SENTENCES[: max(count, 1)]):
            noisy = (
                sentence if index % 4 == 0 else simulator.corrupt(sentence, 0.3, rng) or sentence
            )
            out.write(
                json.dumps({"hypothesis": noisy, "corrected": sentence, "source": f"bench:{index}"})
                + "\n"
            )
    return str(path)


def _run(backend, cuts, config: CorrectionConfig) -> tuple[float, list[tuple[str, str]], Corrector]:
    corrector = Corrector(backend, config)
    start = time.perf_counter()
    output = corrector.run(cuts)
    speed = len(cuts) / (time.perf_counter() - start)
    records = [cut.supervisions[0].custom["pl"]["llm"] for cut in output]
    return speed, [(record["status"], record["text"]) for record in records], corrector


def bench_load(model: str, threads: int) -> None:
    from less.llm.hf import HFBackend, HFConfig

    times = {}
    for label, cached in (("GGUF file", False), ("dequantised copy", True)):
        start = time.perf_counter()
        backend = HFBackend(
            HFConfig(model=model, device="cpu", num_threads=threads, gguf_cache=cached)
        )
        times[label] = time.perf_counter() - start
        backend.close()
    direct, copy = times["GGUF file"], times["dequantised copy"]
    print(
        f"load {model}: GGUF file {direct:.1f} s, dequantised copy {copy:.1f} s, ratio {direct / copy:.1f}x",
        flush=True,
    )


def bench_hf_model(model: str, settings: list[Setting], args, workdir: Path) -> None:
    from less.llm.hf import HFBackend, HFConfig
    from less.llm.models import builtin_model

    builtin = builtin_model(model)
    base_model = builtin is not None and not builtin.instruct
    few_shot = (
        FewShotConfig(count=args.few_shot, examples_file=_few_shot_file(workdir, args.few_shot))
        if base_model
        else FewShotConfig()
    )
    config = CorrectionConfig(task="ast", lang="en", few_shot=few_shot, show_progress=False)
    backends = {}
    for dtype in dict.fromkeys(setting.dtype for setting in settings):
        backends[dtype] = HFBackend(
            HFConfig(model=model, device="cpu", num_threads=args.threads, dtype=dtype)
        )
    cuts, references = _cuts(args.cuts, args.sentences, args.seed)
    speeds: dict[str, list[float]] = {setting.name: [] for setting in settings}
    answers: dict[str, list[tuple[str, str]]] = {}
    for _ in range(args.rounds):
        for setting in settings:
            backend = backends[setting.dtype]
            backend.config.batch_size = backend.parallelism = setting.batch_size
            backend.set_prefix_cache(setting.prefix_cache)
            speed, records, corrector = _run(backend, cuts, config)
            speeds[setting.name].append(speed)
            answers[setting.name] = records
            report = corrector.report
            print(
                f"  {setting.name:>16}: {speed:.3f} cuts/s ({report.ok} ok, {report.rejected} rejected, "
                f"{report.tokens_generated} tokens)",
                flush=True,
            )
    prompt = "few-shot completion" if base_model else "instruction"
    print(
        f"hf {backends[settings[0].dtype].model_id} ({prompt} prompt, {len(cuts)} cuts, {args.threads} thread(s), "
        f"median of {args.rounds} round(s)):"
    )
    if references is not None:
        hypotheses = [cut.supervisions[0].custom["pl"]["hyp"] for cut in cuts]
        print(f"  teacher-like input: WER vs clean {_wer(references, hypotheses):.1f} %")
    first = settings[0].name
    previous = None
    for setting in settings:
        speed = statistics.median(speeds[setting.name])
        same = sum(a == b for a, b in zip(answers[setting.name], answers[first]))
        line = f"  {setting.name:>16}: {speed:.3f} cuts/s"
        if previous is not None:
            line += (
                f", {speed / statistics.median(speeds[previous]):.2f}x {previous}, "
                f"{speed / statistics.median(speeds[first]):.2f}x {first}"
            )
        line += f"; answers identical to {first}: {same}/{len(cuts)}"
        if references is not None:
            line += f"; WER vs clean {_wer(references, [text for _, text in answers[setting.name]]):.1f} %"
        print(line, flush=True)
        previous = setting.name
    for backend in backends.values():
        backend.close()


def bench_openai(args) -> None:
    from less.llm.openai_http import HTTPConfig, OpenAIHTTPBackend

    cuts, _ = _cuts(args.http_cuts, None, args.seed)
    speeds: dict[int, list[float]] = {1: [], args.concurrency: []}
    with FakeChatServer(latency=args.latency) as server:
        for _ in range(args.rounds):
            for concurrency in speeds:
                backend = OpenAIHTTPBackend(
                    HTTPConfig(base_url=server.base_url, model="fake", max_concurrency=concurrency)
                )
                speed, _, _ = _run(
                    backend, cuts, CorrectionConfig(task="ast", lang="en", show_progress=False)
                )
                backend.close()
                speeds[concurrency].append(speed)
                print(f"  openai concurrency {concurrency:2d}: {speed:.2f} cuts/s", flush=True)
    one, many = statistics.median(speeds[1]), statistics.median(speeds[args.concurrency])
    print(
        f"openai (fake server, {args.latency:.2f} s latency, {args.http_cuts} cuts): concurrency 1 {one:.2f} "
        f"cuts/s, concurrency {args.concurrency} {many:.2f} cuts/s, ratio {many / one:.2f}x "
        f"(server saw at most {server.max_in_flight} requests in flight)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--models",
        default="builtin:smollm2",
        help="comma-separated hf models (builtin:smollm2, builtin:gemma3-270m, a dir or .gguf)",
    )
    parser.add_argument(
        "--settings",
        default="fp32-b8,fp32-b8-prefix,bf16-b8-prefix,bf16-b16-prefix",
        help="comma-separated (fp32|bf16)-b<batch>[-prefix]; the first is the reference",
    )
    parser.add_argument("--cuts", type=int, default=16, help="hf: cuts per run")
    parser.add_argument(
        "--sentences",
        default=None,
        help="hf: draw the cuts from this text file (one sentence a line) with simulated errors "
        "instead of the 16 built-in broken sentences",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--few-shot", type=int, default=8, help="hf: worked examples for a base model"
    )
    parser.add_argument("--threads", type=int, default=1, help="hf: torch CPU threads")
    parser.add_argument(
        "--load-times", action="store_true", help="hf: also time GGUF vs dequantised-copy loading"
    )
    parser.add_argument("--http-cuts", type=int, default=32, help="openai: cuts per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--latency", type=float, default=0.2, help="openai: simulated seconds per request"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--skip-openai", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("less.llm.fewshot").setLevel(
        logging.ERROR
    )  # bench examples need no test-set guard
    if not args.skip_openai:
        bench_openai(args)
    if args.skip_hf:
        return
    settings = [parse_setting(name) for name in args.settings.split(",") if name]
    with tempfile.TemporaryDirectory() as workdir:
        for model in args.models.split(","):
            if args.load_times:
                bench_load(model, args.threads)
            bench_hf_model(model, settings, args, Path(workdir))


if __name__ == "__main__":
    main()
