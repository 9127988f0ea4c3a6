#!/usr/bin/env python3
"""A fault-injection run of stage 7 (``less.bin.llm_correct --backend openai``): counts.

Against a local OpenAI-compatible server (:class:`less.llm.testing.FakeChatServer`, a real
HTTP server on 127.0.0.1) this runs the stage as the recipes do, as a separate process, in
four scenarios and prints what a reliability review asks for:

1. *faulty server, killed and resumed*: a share of the cuts get injected faults on their
   first attempts (429 with Retry-After, 500, 503, malformed JSON, dropped connections,
   answers slower than the client's timeout, empty answers); the stage is SIGKILLed once
   a part of the answers has arrived and rerun until it finishes. Counted from the
   server's side: requests, answers delivered, answers delivered twice for the same cut
   (``duplicates``; empty answers are re-asked by design and counted apart), cuts lost
   between input and output, the exit codes, and whether the final labels equal those of
   an undisturbed run of the same cuts.
2. *server down* (connection refused): exit code, seconds until it stops, whether the
   message names the URL, whether an output was written (it must not be).
3. *every request refused* (HTTP 400): exit code, output written or not.
4. *failures within the budget* (1 % of the cuts always fail, ``--max-failed-fraction``
   0.02): exit code 0, those cuts keep the teacher's text with status ``failed:*``.

Usage: python tools/bench/llm_fault_run.py [--cuts 300] [--fault-share 0.3] [--seed 0]
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from lhotse import CutSet

from less.llm.testing import FakeChatServer, last_line_answer, llm_correct_command, make_pl_cuts
from less.utils import cli_parser

FIRST_ATTEMPT_FAULTS = ("429", "500", "503", "malformed", "drop", "slow", "empty_answer")
WORDS = "the a cat dog sees runs big small red green house tree in on".split()


def sentences(count: int, rng: random.Random) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(count)]


def answer(request_id: str, body: dict) -> str:
    """The hypothesis with 'the' made 'a': a deterministic 'correction' per cut."""
    return " ".join(
        "a" if word == "the" else word for word in last_line_answer(request_id, body).split()
    )


def command(in_cuts: Path, out_cuts: Path, base_url: str, *extra: str) -> list[str]:
    options = "--task ast --lang en --backend openai --model fake-llm --timeout 1 --max-retries 4"
    options += " --backoff-base 0.05 --max-concurrency 8"
    return llm_correct_command(in_cuts, out_cuts, options, "--base-url", base_url, *extra)


def labels(path: Path) -> dict[str, tuple[str, str]]:
    return {
        c.id: (
            c.supervisions[0].custom["pl"]["llm"]["text"],
            c.supervisions[0].custom["pl"]["llm"]["status"],
        )
        for c in CutSet.from_file(path)
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def faulty_and_killed(
    work: Path, cuts: CutSet, faults: dict[str, list[str]], kill_after: int
) -> dict:
    in_cuts = work / "in.jsonl.gz"
    reference_out, out = work / "reference" / "llm.jsonl.gz", work / "faulty" / "llm.jsonl.gz"
    with FakeChatServer(answer_fn=answer, names=cuts.ids) as clean:
        reference = subprocess.run(
            command(in_cuts, reference_out, clean.base_url), capture_output=True, text=True
        )
        assert reference.returncode == 0, reference.stderr[-2000:]
    with FakeChatServer(
        answer_fn=answer, faults=faults, names=cuts.ids, slow_seconds=3.0, retry_after="0"
    ) as server:
        codes = []
        process = subprocess.Popen(
            command(in_cuts, out, server.base_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        while process.poll() is None and server.total_answered < kill_after:
            time.sleep(0.02)
        answered_at_kill = server.total_answered
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        codes.append(process.returncode)
        for _ in range(
            5
        ):  # rerun until it finishes (failures beyond the budget exit 1 and are re-asked)
            rerun = subprocess.run(
                command(in_cuts, out, server.base_url), capture_output=True, text=True
            )
            codes.append(rerun.returncode)
            if rerun.returncode == 0:
                break
        empty_ids = {cut_id for cut_id, queue in faults.items() if "empty_answer" in queue}
        slow_ids = {cut_id for cut_id, queue in faults.items() if "slow" in queue}
        twice = {cut_id: n for cut_id, n in server.answered.items() if n > 1}
        final = labels(out)
        # one more rerun: cached empty answers (HTTP 200 with no text) are asked again by design
        again = subprocess.run(
            command(in_cuts, out, server.base_url), capture_output=True, text=True
        )
    wanted = labels(reference_out)
    after_rerun = labels(out)
    return {
        "cuts": len(cuts),
        "cuts with injected faults": len(faults),
        "answers before SIGKILL": answered_at_kill,
        "requests": server.total_requests,
        "answers delivered": server.total_answered,
        "duplicate answers (not re-asked empties)": sum(
            n - 1 for i, n in twice.items() if i not in empty_ids
        ),
        "of which answers slower than the client's timeout": sum(
            n - 1 for i, n in twice.items() if i in slow_ids and i not in empty_ids
        ),
        "re-asked empty answers": sum(n - 1 for i, n in twice.items() if i in empty_ids),
        "cuts lost": len(cuts) - len(final),
        "exit codes": codes,
        "labels equal to an undisturbed run": sum(final.get(i) == wanted[i] for i in wanted),
        "of the others, cuts whose answer was empty": sum(
            final.get(i) != wanted[i] and i in empty_ids for i in wanted
        ),
        "exit code of one more rerun": again.returncode,
        "labels equal after it": sum(after_rerun.get(i) == wanted[i] for i in wanted),
    }


def server_down(work: Path) -> dict:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    out = work / "down" / "llm.jsonl.gz"
    start = time.monotonic()
    result = subprocess.run(
        command(work / "in.jsonl.gz", out, base_url), capture_output=True, text=True
    )
    return {
        "exit code": result.returncode,
        "seconds": round(time.monotonic() - start, 1),
        "message names the URL": base_url in result.stderr,
        "output written": out.exists(),
    }


def all_refused(work: Path, cuts: CutSet) -> dict:
    out = work / "refused" / "llm.jsonl.gz"
    with FakeChatServer(
        answer_fn=answer, faults={i: ["400"] * 20 for i in cuts.ids}, names=cuts.ids
    ) as server:
        result = subprocess.run(
            command(work / "in.jsonl.gz", out, server.base_url), capture_output=True, text=True
        )
    return {
        "exit code": result.returncode,
        "requests": server.total_requests,
        "output written": out.exists(),
    }


def within_budget(work: Path, cuts: CutSet, rng: random.Random) -> dict:
    out = work / "budget" / "llm.jsonl.gz"
    broken = rng.sample(sorted(cuts.ids), max(1, len(cuts) // 100))
    with FakeChatServer(
        answer_fn=answer, faults={i: ["400"] * 20 for i in broken}, names=cuts.ids
    ) as server:
        result = subprocess.run(
            command(work / "in.jsonl.gz", out, server.base_url, "--max-failed-fraction", "0.02"),
            capture_output=True,
            text=True,
        )
    final = labels(out) if out.exists() else {}
    failed = [i for i, (_, status) in final.items() if status.startswith("failed")]
    return {
        "exit code": result.returncode,
        "cuts failing on every attempt": len(broken),
        "cuts marked failed": len(failed),
        "they are the failing ones": sorted(failed) == sorted(broken),
        "cuts lost": len(cuts) - len(final),
    }


def main(argv: list[str] | None = None) -> None:
    parser = cli_parser(__doc__)
    parser.add_argument("--cuts", type=int, default=300, help="cuts in the run")
    parser.add_argument(
        "--fault-share", type=float, default=0.3, help="share of cuts with injected faults"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    cuts = make_pl_cuts(sentences(args.cuts, rng), prefix="fault", language="es")
    faults = {
        cut_id: [rng.choice(FIRST_ATTEMPT_FAULTS) for _ in range(rng.randint(1, 2))]
        for cut_id in rng.sample(sorted(cuts.ids), int(args.fault_share * len(cuts)))
    }
    os.environ.setdefault("OPENAI_API_KEY", "not-a-real-key")
    with tempfile.TemporaryDirectory(prefix="llm_fault_run_") as tmp:
        work = Path(tmp)
        cuts.to_file(work / "in.jsonl.gz")
        start = time.monotonic()
        report = {
            "faulty server, SIGKILL, resumed": faulty_and_killed(
                work, cuts, faults, kill_after=len(cuts) // 3
            ),
            "server down": server_down(work),
            "every request refused (HTTP 400)": all_refused(work, cuts),
            "1 % of cuts always failing, budget 2 %": within_budget(work, cuts, rng),
        }
    for scenario, numbers in report.items():
        print(f"{scenario}:")
        for key, value in numbers.items():
            print(f"  {key}: {value}")
    print(f"({time.monotonic() - start:.0f} s)")


if __name__ == "__main__":
    main()
