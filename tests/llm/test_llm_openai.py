"""The ``openai`` backend against a real HTTP server on 127.0.0.1 (less.llm.testing)."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest

from less.llm.base import ScoreRequest, ScoringNotSupportedError
from less.llm.cache import AnswerCache
from less.llm.correct import CorrectionConfig, Corrector, LLMRequestFailed
from less.llm.openai_http import HTTPConfig, OpenAIHTTPBackend, parse_retry_after
from less.llm.testing import FakeChatServer, llm_correct_command, make_pl_cuts, run_llm_correct

COLOURS = ["red", "blue", "green", "white", "black", "pink", "grey", "brown"]
HYPOTHESES = [f"i goed to the {colour} shop" for colour in COLOURS]
FIXED = {
    f"cut-{n:04d}": f"Corrected: I went to the {colour} shop." for n, colour in enumerate(COLOURS)
}


def answer_by_cut(request_id: str, body: dict) -> str:
    return FIXED[request_id]


def make_backend(server: FakeChatServer, **overrides) -> OpenAIHTTPBackend:
    options = dict(
        base_url=server.base_url,
        model="fake-llm",
        max_concurrency=4,
        timeout=0.5,
        connect_timeout=1.0,
        max_retries=3,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    options.update(overrides)
    return OpenAIHTTPBackend(HTTPConfig(**options))


def run(backend, cuts, cache, **config) -> tuple[list, Corrector]:
    corrector = Corrector(
        backend, CorrectionConfig(task="ast", lang="en", show_progress=False, **config), cache
    )
    return corrector.run(cuts), corrector


def llm_records(cuts) -> dict[str, dict]:
    return {cut.id: cut.supervisions[0].custom["pl"]["llm"] for cut in cuts}


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait


def test_injected_faults_end_answered_or_clearly_failed(tmp_path) -> None:
    faults = {
        "cut-0000": ["429"],  # Retry-After: 1
        "cut-0001": ["500", "503"],
        "cut-0002": ["slow"],  # answers after the client's read timeout
        "cut-0003": ["malformed"],
        "cut-0004": ["drop"],
        "cut-0005": ["empty_choices"],
        "cut-0006": ["500"] * 10,  # never recovers within the retries
        "cut-0007": ["400"],  # not retryable
    }
    cuts = make_pl_cuts(HYPOTHESES, language="es")
    cache_path = tmp_path / "llm_cache.jsonl"
    with FakeChatServer(
        answer_fn=answer_by_cut, faults=faults, retry_after="1", slow_seconds=1.0
    ) as server:
        backend = make_backend(server)
        output, corrector = run(backend, cuts, AnswerCache(cache_path))
        backend.close()
        records = llm_records(output)
        for n in range(6):
            assert records[f"cut-{n:04d}"]["status"] == "ok", records[f"cut-{n:04d}"]
            assert records[f"cut-{n:04d}"]["text"] == f"i went to the {COLOURS[n]} shop"
        assert records["cut-0006"]["status"] == "failed:http_500"
        assert records["cut-0007"]["status"] == "failed:http_400"
        for cut_id in ("cut-0006", "cut-0007"):  # a failed cut keeps the teacher's text
            assert records[cut_id]["text"] == HYPOTHESES[int(cut_id[-1])]
        assert server.requests["cut-0000"] == 2
        assert server.requests["cut-0001"] == 3
        assert server.requests["cut-0006"] == 4  # 1 + max_retries
        assert server.requests["cut-0007"] == 1
        first, second = server.request_times["cut-0000"][:2]
        assert second - first >= 0.9, "Retry-After: 1 was not honoured"
        report = corrector.report
        assert report.failures == 2 and report.failure_reasons == {"http_500": 1, "http_400": 1}
        assert report.ok == 6 and report.answers_received == 6
        assert report.requests_sent == sum(server.requests.values())
        assert len(cache_path.read_text().splitlines()) == 6

        # Restart: answered cuts are not sent again; the failed ones are asked again.
        server.faults.clear()
        before = dict(server.requests)
        backend = make_backend(server)
        output, corrector = run(backend, cuts, AnswerCache(cache_path))
        backend.close()
        for cut_id, count in before.items():
            expected = count + 1 if cut_id in ("cut-0006", "cut-0007") else count
            assert server.requests[cut_id] == expected, cut_id
        assert all(r["status"] == "ok" for r in llm_records(output).values())
        assert corrector.report.cache_hits == 6 and corrector.report.requests_sent == 2


def test_concurrent_requests_overlap_and_stay_bounded(tmp_path) -> None:
    hypotheses = [f"i goed to the {colour} shop" for colour in COLOURS + COLOURS[:4]]
    cuts = make_pl_cuts(hypotheses)
    with FakeChatServer(latency=0.3) as server:
        backend = make_backend(server, max_concurrency=4, timeout=5.0)
        output, _ = run(backend, cuts, AnswerCache(None))
        backend.close()
    assert server.total_requests == 12
    assert 2 <= server.max_in_flight <= 4
    assert all(r["status"] == "ok" for r in llm_records(output).values())


def test_fail_fast_stops_the_run(tmp_path) -> None:
    cuts = make_pl_cuts(HYPOTHESES[:2])
    with FakeChatServer(
        answer_fn=answer_by_cut, faults={"cut-0000": ["400"], "cut-0001": ["400"]}
    ) as server:
        backend = make_backend(server, max_concurrency=1)
        with pytest.raises(LLMRequestFailed, match="cut-000"):
            run(backend, cuts, AnswerCache(None), fail_fast=True)
        backend.close()


def test_api_key_is_sent_but_never_logged(tmp_path, monkeypatch, caplog) -> None:
    secret = "sk-test-DO-NOT-LOG-4242"
    monkeypatch.setenv("LESS_TEST_LLM_KEY", secret)
    cuts = make_pl_cuts(HYPOTHESES[:3])
    faults = {"cut-0000": ["500_echo"], "cut-0001": ["500_echo"] * 10}
    caplog.set_level(logging.DEBUG)
    with FakeChatServer(answer_fn=answer_by_cut, faults=faults) as server:
        backend = make_backend(server, api_key_env="LESS_TEST_LLM_KEY", max_retries=1)
        output, corrector = run(backend, cuts, AnswerCache(tmp_path / "cache.jsonl"))
        backend.close()
        assert set(server.authorization) == {f"Bearer {secret}"}
        # The CLI too: its log file and its stderr.
        in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "out" / "cuts_llm.jsonl.gz"
        make_pl_cuts(HYPOTHESES[3:6], prefix="cli").to_file(in_cuts)
        server.faults["cli-0000"] = ["500_echo"]
        options = "--task ast --backend openai --model fake-llm --api-key-env LESS_TEST_LLM_KEY"
        options += " --backoff-base 0.01 --max-retries 2 --max-failed-fraction 1"
        result = run_llm_correct(
            in_cuts, out_cuts, options, "--base-url", server.base_url, timeout=120
        )
    assert result.returncode == 0, result.stderr
    assert "500" in caplog.text  # the failures were logged ...
    texts = [
        caplog.text,
        result.stderr,
        result.stdout,
        (out_cuts.parent / "log" / "llm_correct.log").read_text(),
    ]
    texts += [p.read_text() for p in tmp_path.rglob("*.json*") if p.suffix != ".gz"]
    for text in texts:
        assert secret not in text  # ... without the key
    assert corrector.report.failures == 1


def test_rescore_over_http_uses_echoed_logprobs() -> None:
    good_words = {"went", "home"}

    def logprob(token: str) -> float:
        return 0.0 if token in good_words else -5.0

    nbest = [
        [("i goed home", -1.0), ("i went home", -1.2)],
        [("we went home", -2.0), ("we wend home", -1.0)],
    ]
    cuts = make_pl_cuts([n[0][0] for n in nbest], nbest=nbest)
    with FakeChatServer(logprob_fn=logprob) as server:
        backend = make_backend(server)
        assert backend.score([ScoreRequest("i went home"), ScoreRequest("i goed home")]) == [
            0.0,
            -5.0,
        ]
        output, _ = run(backend, cuts, AnswerCache(None), mode="rescore", lm_weight=1.0)
        backend.close()
    records = llm_records(output)
    assert records["cut-0000"]["text"] == "i went home" and records["cut-0000"]["nbest_index"] == 1
    assert records["cut-0001"]["text"] == "we went home" and records["cut-0001"]["nbest_index"] == 0


def test_rescore_on_a_chat_only_server_raises_a_clear_error() -> None:
    with FakeChatServer(completions=False) as server:
        backend = make_backend(server)
        with pytest.raises(ScoringNotSupportedError, match="completions API"):
            backend.score([ScoreRequest("hello there")])
        backend.close()


def test_report_json_from_the_cli_counts_requests(tmp_path) -> None:
    in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "cuts_llm.jsonl.gz"
    make_pl_cuts(HYPOTHESES[:4]).to_file(in_cuts)
    with FakeChatServer(answer_fn=answer_by_cut, faults={"cut-0001": ["503"]}) as server:
        options = "--task ast --backend openai --model fake-llm --backoff-base 0.01"
        command = llm_correct_command(in_cuts, out_cuts, options, "--base-url", server.base_url)
        assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
        report = json.loads((tmp_path / "cuts_llm.report.json").read_text())
        assert report["cuts"] == 4 and report["ok"] == 4 and report["requests_sent"] == 5
        assert report["retries"] == 1 and report["cache_hits"] == 0
        # Finished output: a rerun is skipped without a request.
        assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
        assert server.total_requests == 5
