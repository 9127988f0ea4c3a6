"""The answer cache: durable appends, torn lines, stale entries, resume after SIGKILL/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from lhotse import CutSet

from less.llm.cache import AnswerCache, CacheEntry
from less.llm.testing import FakeChatServer, llm_correct_command, make_pl_cuts

WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "olive", "peach", "pear"]


def entry(cut_id: str, answer: str, sha: str = "in") -> CacheEntry:
    return CacheEntry(
        cut_id=cut_id, model="m", prompt_sha="p", mode="correct", input_sha=sha, answer=answer
    )


def test_appends_survive_a_reload_and_a_torn_last_line(tmp_path, caplog) -> None:
    path = tmp_path / "llm_cache.jsonl"
    cache = AnswerCache(path)
    cache.append(entry("a", "first"))
    cache.append(entry("b", "second"))
    cache.close()
    with open(path, "ab") as f:  # a writer killed mid-line
        f.write(b'{"cut_id": "c", "model": "m", "prompt_')
    caplog.set_level(logging.WARNING)
    cache = AnswerCache(path)
    assert len(cache) == 2 and cache.bad_lines == 1
    assert "truncated last line 3" in caplog.text
    assert cache.get(("a", "m", "p", "correct"), "in").answer == "first"
    cache.append(entry("c", "third"))  # starts on a fresh line, not glued to the torn one
    cache.close()
    reloaded = AnswerCache(path)
    assert len(reloaded) == 3 and reloaded.bad_lines == 1
    assert reloaded.get(("c", "m", "p", "correct"), "in").answer == "third"


def test_an_entry_for_another_input_is_stale(tmp_path) -> None:
    cache = AnswerCache(tmp_path / "c.jsonl")
    cache.append(entry("a", "old answer", sha="hypothesis-1"))
    assert cache.get(("a", "m", "p", "correct"), "hypothesis-2") is None
    assert cache.stale_hits == 1
    assert cache.get(("a", "m", "other-prompt", "correct"), "hypothesis-1") is None
    cache.close()


def _cli(in_cuts: Path, out_cuts: Path, base_url: str) -> list[str]:
    options = "--task ast --lang en --backend openai --model fake-llm --max-concurrency 3"
    return llm_correct_command(
        in_cuts, out_cuts, f"{options} --timeout 30 --backoff-base 0.01", "--base-url", base_url
    )


def _wait_for(condition, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def _answer(request_id: str, body: dict) -> str:
    return f"Sure! Here is the corrected text: I ate the {WORDS[int(request_id[-2:]) % 10]} {request_id[-2:]}"


def test_resume_after_sigkill_loses_no_answer_and_repeats_none(tmp_path) -> None:
    cuts = make_pl_cuts(
        [f"i eated the {WORDS[n % 10]} {n:02d}" for n in range(30)], prefix="cut", language="es"
    )
    in_cuts, out_cuts = (
        tmp_path / "unsup_cuts_pl.jsonl.gz",
        tmp_path / "pl" / "unsup_cuts_llm.jsonl.gz",
    )
    cache_path = out_cuts.parent / "llm_cache.jsonl"
    cuts.to_file(in_cuts)
    with FakeChatServer(answer_fn=_answer, latency=0.02, hold_after=10) as server:
        process = subprocess.Popen(
            _cli(in_cuts, out_cuts, server.base_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # 10 answers delivered and cached, further requests in flight (held by the server).
            _wait_for(lambda: _lines(cache_path) == 10 and server.in_flight >= 1)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        assert not out_cuts.exists()
        answered_before_kill = {cut_id for cut_id, n in server.answered.items() if n}
        assert len(answered_before_kill) == 10
        with open(
            cache_path, "ab"
        ) as f:  # and, for good measure, a torn line from a kill mid-write
            f.write(b'{"cut_id": "cut-0029", "mod')
        server.hold_after = None  # new requests pass; the held ones never answer the dead client
        result = subprocess.run(
            _cli(in_cuts, out_cuts, server.base_url), capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "truncated last line" in result.stderr
        requests, answered = dict(server.requests), dict(server.answered)
    for cut in cuts:
        assert answered.get(cut.id) == 1, f"{cut.id} answered {answered.get(cut.id)} times"
    for cut_id in answered_before_kill:
        assert requests[cut_id] == 1, f"{cut_id} was asked again after its answer was cached"
    assert (
        sum(requests.values()) - len(cuts) <= 3
    )  # only requests in flight at the kill (concurrency 3)
    records = {c.id: c.supervisions[0].custom["pl"]["llm"] for c in CutSet.from_file(out_cuts)}
    assert len(records) == 30
    for n in range(30):
        record = records[f"cut-{n:04d}"]
        assert record["status"] == "ok"
        assert record["text"].startswith(f"i ate the {WORDS[n % 10]}")
    assert (out_cuts.parent / ".unsup_cuts_llm.jsonl.gz.done").exists()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_promptly_and_the_rerun_finishes(tmp_path) -> None:
    cuts = make_pl_cuts(
        [f"i eated the {WORDS[n % 10]} {n:02d}" for n in range(8)], prefix="cut", language="es"
    )
    in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz"
    cache_path = tmp_path / "llm_cache.jsonl"
    cuts.to_file(in_cuts)
    with FakeChatServer(answer_fn=_answer, hold_after=3) as server:
        # A shell without job control starts background jobs with SIGINT ignored, and children
        # inherit that (CI launched with `&`): give the CLI the default Ctrl-C disposition.
        process = subprocess.Popen(
            _cli(in_cuts, out_cuts, server.base_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        try:
            _wait_for(lambda: _lines(cache_path) == 3 and server.in_flight >= 1)
            start = time.monotonic()
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(
                timeout=20
            )  # held requests would block for --timeout 30
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
        assert process.returncode == 130
        assert time.monotonic() - start < 15
        assert "rerun the same command to resume" in stderr
        server.hold_after = None
        result = subprocess.run(
            _cli(in_cuts, out_cuts, server.base_url), capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert all(n == 1 for n in server.answered.values()) and len(server.answered) == 8
    assert len(CutSet.from_file(out_cuts)) == 8
