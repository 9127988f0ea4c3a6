#!/usr/bin/env python3
"""LLM correction throughput: batching (hf) and concurrency (openai) vs one at a time.

Both halves run the real ``less.llm.correct.Corrector`` (prompt building, cleaning,
records; no cache) over the same cuts with the same model, once one-at-a-time and
once parallel, rounds interleaved so load from other processes hits both alike, and
print cuts/second (median over rounds) and the ratio parallel / one-at-a-time.

* ``hf``: the built-in SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to fp32 by
  transformers) on broken English sentences with the translation-correction prompt,
  ``--batch-size 1`` vs ``--batch-size N``; one model object serves both.
* ``openai``: ``less.llm.testing.FakeChatServer`` on 127.0.0.1 with a simulated
  latency per request, ``--max-concurrency 1`` vs ``N``.

Usage: python tools/bench/llm_throughput.py [--cuts 16] [--batch-size 8] [--threads 1]
       [--http-cuts 32] [--concurrency 8] [--latency 0.2] [--rounds 2] [--skip-hf] [--skip-openai]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from less.llm.correct import CorrectionConfig, Corrector
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


def _cuts(count: int):
    hypotheses = [BROKEN_ENGLISH[i % len(BROKEN_ENGLISH)] for i in range(count)]
    return make_pl_cuts(hypotheses, prefix="bench", language="es")


def _cuts_per_second(backend, cuts) -> tuple[float, Corrector]:
    corrector = Corrector(backend, CorrectionConfig(task="ast", lang="en", show_progress=False))
    start = time.perf_counter()
    corrector.run(cuts)
    return len(cuts) / (time.perf_counter() - start), corrector


def bench_hf(args) -> None:
    from less.llm.hf import HFBackend, HFConfig

    backend = HFBackend(HFConfig(model=args.hf_model, batch_size=1, device="cpu", num_threads=args.threads))
    cuts = _cuts(args.cuts)
    speeds: dict[int, list[float]] = {1: [], args.batch_size: []}
    tokens: dict[int, int] = {}
    for _ in range(args.rounds):
        for batch_size in speeds:
            backend.config.batch_size = backend.parallelism = batch_size
            speed, corrector = _cuts_per_second(backend, cuts)
            speeds[batch_size].append(speed)
            tokens[batch_size] = corrector.report.tokens_generated
            print(f"  hf batch {batch_size:2d}: {speed:.3f} cuts/s ({corrector.report.ok} ok, "
                  f"{corrector.report.rejected} rejected, {corrector.report.tokens_generated} tokens)", flush=True)
    one, many = statistics.median(speeds[1]), statistics.median(speeds[args.batch_size])
    print(f"hf {backend.model_id} ({args.cuts} cuts, {args.threads} thread(s)): batch 1 {one:.3f} cuts/s, "
          f"batch {args.batch_size} {many:.3f} cuts/s, ratio {many / one:.2f}x")


def bench_openai(args) -> None:
    from less.llm.openai_http import HTTPConfig, OpenAIHTTPBackend

    cuts = _cuts(args.http_cuts)
    speeds: dict[int, list[float]] = {1: [], args.concurrency: []}
    with FakeChatServer(latency=args.latency) as server:
        for _ in range(args.rounds):
            for concurrency in speeds:
                backend = OpenAIHTTPBackend(HTTPConfig(base_url=server.base_url, model="fake",
                                                       max_concurrency=concurrency))
                speed, _ = _cuts_per_second(backend, cuts)
                backend.close()
                speeds[concurrency].append(speed)
                print(f"  openai concurrency {concurrency:2d}: {speed:.2f} cuts/s", flush=True)
    one, many = statistics.median(speeds[1]), statistics.median(speeds[args.concurrency])
    print(f"openai (fake server, {args.latency:.2f} s latency, {args.http_cuts} cuts): concurrency 1 {one:.2f} "
          f"cuts/s, concurrency {args.concurrency} {many:.2f} cuts/s, ratio {many / one:.2f}x "
          f"(server saw at most {server.max_in_flight} requests in flight)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--hf-model", default="builtin:smollm2")
    parser.add_argument("--cuts", type=int, default=16, help="hf: cuts per run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="hf: torch CPU threads")
    parser.add_argument("--http-cuts", type=int, default=32, help="openai: cuts per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2, help="openai: simulated seconds per request")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--skip-openai", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.skip_openai:
        bench_openai(args)
    if not args.skip_hf:
        bench_hf(args)


if __name__ == "__main__":
    main()
