"""llm_correct when the server is down, hangs, fails many requests, refuses request ids,
or is given a key instead of a variable name (the openai backend; less.llm.testing)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from lhotse import CutSet

from less.llm.cache import AnswerCache
from less.llm.correct import CorrectionConfig, Corrector, FailureBudgetExceeded
from less.llm.openai_http import HTTPConfig, OpenAIHTTPBackend, request_uuid
from less.llm.testing import FakeChatServer, llm_correct_command, make_pl_cuts
from tests.helpers import free_port

COLOURS = ["red", "blue", "green", "white", "black", "pink", "grey", "brown", "gold", "teal"]
HYPOTHESES = [f"i goed to the {colour} shop" for colour in COLOURS]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def fixed_answer(request_id: str, body: dict) -> str:
    if not request_id.startswith("cut-"):  # the 1-token health check
        return "Hi"
    return f"I went to the {COLOURS[int(request_id[-4:])]} shop."


def make_backend(base_url: str, **overrides) -> OpenAIHTTPBackend:
    options = dict(
        base_url=base_url,
        model="fake-llm",
        max_concurrency=1,
        timeout=2.0,
        connect_timeout=1.0,
        max_retries=1,
        backoff_base=0.01,
        backoff_max=0.02,
        health_timeout=2.0,
    )
    options.update(overrides)
    return OpenAIHTTPBackend(HTTPConfig(**options))


def correct(backend, cuts, cache, **config):
    corrector = Corrector(
        backend, CorrectionConfig(task="ast", lang="en", show_progress=False, **config), cache
    )
    try:
        return corrector.run(cuts), corrector
    finally:
        backend.close()


def statuses(cuts) -> dict[str, str]:
    return {cut.id: cut.supervisions[0].custom["pl"]["llm"]["status"] for cut in cuts}


def cli(in_cuts: Path, out_cuts: Path, base_url: str, *extra: str) -> list[str]:
    options = "--task ast --backend openai --model fake-llm"
    return llm_correct_command(in_cuts, out_cuts, options, "--base-url", base_url, *extra)


def write_cuts(tmp_path: Path, count: int = 8) -> tuple[Path, Path]:
    in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "out" / "cuts_llm.jsonl.gz"
    make_pl_cuts(HYPOTHESES[:count], language="es").to_file(in_cuts)
    return in_cuts, out_cuts


# -- a server that is down or hangs: one quick check, a message naming the URL --------------------


def test_refused_connection_fails_in_seconds_naming_the_url(tmp_path) -> None:
    """Default timeouts and retries: the old code spent every cut's 5 retries, then exited 0."""
    in_cuts, out_cuts = write_cuts(tmp_path)
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    start = time.monotonic()
    result = subprocess.run(
        cli(in_cuts, out_cuts, base_url), capture_output=True, text=True, timeout=120, env=ENV
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    assert base_url in result.stderr and "connection refused" in result.stderr
    assert not out_cuts.exists()  # the next stage cannot go on with the teacher's text everywhere
    assert elapsed < 25, f"took {elapsed:.1f} s"


def test_hanging_server_fails_within_the_health_timeout(tmp_path) -> None:
    in_cuts, out_cuts = write_cuts(tmp_path, 3)
    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        base_url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        start = time.monotonic()
        result = subprocess.run(
            cli(in_cuts, out_cuts, base_url, "--health-timeout", "1"),
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    assert f"the LLM server at {base_url} did not answer" in result.stderr
    assert not out_cuts.exists()
    assert elapsed < 25, f"took {elapsed:.1f} s"


def test_health_check_falls_back_to_a_one_token_chat_and_is_skipped_when_all_is_cached(
    tmp_path,
) -> None:
    cuts = make_pl_cuts(HYPOTHESES[:3], language="es")
    cache_path = tmp_path / "cache.jsonl"
    with FakeChatServer(answer_fn=fixed_answer, models_route=False) as server:
        output, _ = correct(make_backend(server.base_url), cuts, AnswerCache(cache_path))
        assert server.health_checks == 1  # GET /models: 404 ...
        assert server.total_requests == 3 + 1  # ... then one 1-token chat request, then the cuts
    assert set(statuses(output).values()) == {"ok"}
    # Everything cached: no request at all, not even the check, so a dead server does not matter.
    dead = make_backend(f"http://127.0.0.1:{free_port()}/v1")
    output, corrector = correct(dead, cuts, AnswerCache(cache_path))
    assert set(statuses(output).values()) == {"ok"} and corrector.report.cache_hits == 3


# -- the failure budget --------------------------------------------------------------------------


def test_failure_budget_stops_asking_and_names_url_and_failure_kinds() -> None:
    cuts = make_pl_cuts(HYPOTHESES, language="es")
    faults = {f"cut-{n:04d}": ["400"] for n in (1, 3, 5, 7, 9)}
    with FakeChatServer(answer_fn=fixed_answer, faults=faults) as server:
        with pytest.raises(FailureBudgetExceeded) as caught:
            correct(make_backend(server.base_url), cuts, AnswerCache(None), max_failed_fraction=0.2)
        requests, base_url = server.total_requests, server.base_url
    message = str(caught.value)
    assert base_url in message and "http_400: 3" in message and "3 of 10 cuts" in message
    assert caught.value.failures == 3 and caught.value.failure_reasons == {"http_400": 3}
    assert requests < 10  # stopped at the third failure: the other failing cuts were not asked


def test_cli_over_budget_exits_1_keeps_answers_and_a_rerun_asks_only_the_rest(tmp_path) -> None:
    in_cuts, out_cuts = write_cuts(tmp_path)
    cache_path = out_cuts.parent / "llm_cache.jsonl"
    with FakeChatServer(
        answer_fn=fixed_answer, faults={"cut-0003": ["400"], "cut-0005": ["400"]}
    ) as server:
        command = cli(in_cuts, out_cuts, server.base_url, "--max-concurrency", "1")
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV)
        assert result.returncode == 1, result.stderr
        assert server.base_url in result.stderr and "http_400: 1" in result.stderr
        assert "--max-failed-fraction" in result.stderr and str(cache_path) in result.stderr
        assert not out_cuts.exists()
        answered_before = {cut_id for cut_id, n in server.answered.items() if n}
        assert len(cache_path.read_text().splitlines()) == len(answered_before) < 8
        server.faults.clear()
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV)
        assert result.returncode == 0, result.stderr
        assert all(n == 1 for n in server.answered.values()) and len(server.answered) == 8
    assert set(statuses(CutSet.from_file(out_cuts)).values()) == {"ok"}


def test_stopping_does_not_wait_for_requests_still_in_flight(tmp_path) -> None:
    """Over the budget while other requests hang: exit now, not after their --timeout (120 s)."""
    in_cuts, out_cuts = write_cuts(tmp_path, 6)
    faults = {f"cut-{n:04d}": ["slow"] for n in range(6)}  # answer after 60 s ...
    faults["cut-0000"] = [
        "400"
    ]  # ... but the shortest prompt (sent first) fails at once, after the latency
    with FakeChatServer(
        answer_fn=fixed_answer, faults=faults, latency=1.0, slow_seconds=60
    ) as server:
        start = time.monotonic()
        result = subprocess.run(
            cli(in_cuts, out_cuts, server.base_url, "--max-concurrency", "4"),
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        elapsed = time.monotonic() - start
        assert (
            server.in_flight == 3
        )  # the other requests sent were still waiting when the client left
    assert result.returncode == 1 and "http_400: 1" in result.stderr, result.stderr
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_failures_within_the_budget_write_the_output_unfinished(tmp_path) -> None:
    in_cuts, out_cuts = write_cuts(tmp_path, 10)
    with FakeChatServer(answer_fn=fixed_answer, faults={"cut-0004": ["400"]}) as server:
        result = subprocess.run(
            cli(in_cuts, out_cuts, server.base_url, "--max-failed-fraction", "0.1"),
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
    assert result.returncode == 0, result.stderr
    assert statuses(CutSet.from_file(out_cuts))["cut-0004"] == "failed:http_400"
    assert not (
        out_cuts.parent / f".{out_cuts.name}.done"
    ).exists()  # a rerun asks the failed cut again


# -- cached rejections that may be transient -----------------------------------------------------


def test_one_empty_answer_is_asked_again_in_the_run(tmp_path) -> None:
    cuts = make_pl_cuts(HYPOTHESES[:3], language="es")
    with FakeChatServer(answer_fn=fixed_answer, faults={"cut-0001": ["empty_answer"]}) as server:
        output, corrector = correct(make_backend(server.base_url), cuts, AnswerCache(None))
    assert statuses(output) == {"cut-0000": "ok", "cut-0001": "ok", "cut-0002": "ok"}
    assert server.requests["cut-0001"] == 2 and corrector.report.failures == 0


def test_empty_answers_are_asked_again_on_a_rerun_unless_kept(tmp_path) -> None:
    cuts = make_pl_cuts(HYPOTHESES[:3], language="es")
    cache_path = tmp_path / "cache.jsonl"
    # empty twice: the in-run retry gets an empty answer too, and it stands
    with FakeChatServer(
        answer_fn=fixed_answer, faults={"cut-0001": ["empty_answer"] * 2}
    ) as server:
        output, _ = correct(make_backend(server.base_url), cuts, AnswerCache(cache_path))
        assert statuses(output)["cut-0001"] == "rejected:empty"
        assert server.total_requests == 4

        output, corrector = correct(
            make_backend(server.base_url), cuts, AnswerCache(cache_path), retry_rejected=False
        )  # --keep-rejected
        assert statuses(output)["cut-0001"] == "rejected:empty" and server.total_requests == 4
        assert corrector.report.cache_hits == 3

        server.faults["cut-0001"] = [
            "400"
        ]  # asking again fails: the cached answer stands, no failure
        output, corrector = correct(make_backend(server.base_url), cuts, AnswerCache(cache_path))
        assert statuses(output)["cut-0001"] == "rejected:empty" and corrector.report.failures == 0
        assert server.requests["cut-0001"] == 3 and corrector.report.reasked_rejected == 1

        output, corrector = correct(make_backend(server.base_url), cuts, AnswerCache(cache_path))
        assert statuses(output) == {"cut-0000": "ok", "cut-0001": "ok", "cut-0002": "ok"}
        assert server.requests["cut-0001"] == 4 and server.total_requests == 6
        assert corrector.report.cache_hits == 2 and corrector.report.reasked_rejected == 1
    # The new answer was appended: the next run takes it from the cache.
    output, corrector = correct(
        make_backend(f"http://127.0.0.1:{free_port()}/v1"), cuts, AnswerCache(cache_path)
    )
    assert set(statuses(output).values()) == {"ok"} and corrector.report.cache_hits == 3


# -- request ids ---------------------------------------------------------------------------------


def test_request_ids_are_uuids_a_strict_server_accepts(tmp_path) -> None:
    """llama-cpp-python answers 400 to an X-Request-Id that is not a UUID (not retried: every cut
    failed); a cut id that is not Latin-1 could not even be put in a header."""
    cuts = make_pl_cuts(HYPOTHESES[:3], language="es") + make_pl_cuts(
        ["we goed home"], prefix="片段", language="es"
    )
    with FakeChatServer(strict_request_ids=True) as server:
        output, _ = correct(
            make_backend(server.base_url, max_concurrency=2), cuts, AnswerCache(None)
        )
        first = sorted(server.raw_request_ids)
        correct(make_backend(server.base_url, max_concurrency=2), cuts, AnswerCache(None))
        second = sorted(server.raw_request_ids[len(first) :])
    assert set(statuses(output).values()) == {"ok"}
    assert len(first) == 4 and all(str(uuid.UUID(value)) == value for value in first)
    assert first == second  # reproducible: server logs match cuts across runs
    assert server.requests["片段-0000"] == 2  # and they resolve back to their cut
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert request_uuid("cut-1", body) != request_uuid(
        "cut-1", body, attempt=1
    )  # a retry is a new request
    assert request_uuid("cut-1", body) != request_uuid("cut-1", {**body, "model": "n"})


# -- an API key passed instead of a variable name ------------------------------------------------


@pytest.mark.parametrize(
    "value", ["sk-proj-Zx81SECRETqq92", "AbC=key value", "hf_abcdefghijklmnopqrstuvwx"]
)
def test_a_key_given_as_api_key_env_is_refused_without_being_echoed(tmp_path, value) -> None:
    in_cuts, out_cuts = write_cuts(tmp_path, 2)
    with FakeChatServer(answer_fn=fixed_answer) as server:
        result = subprocess.run(
            cli(in_cuts, out_cuts, server.base_url, "--api-key-env", value),
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        assert server.total_requests == 0 and server.health_checks == 0
    assert result.returncode == 2
    assert "NAME of the environment variable" in result.stderr
    log = (out_cuts.parent / "log" / "llm_correct.log").read_text()
    for text in (result.stderr, result.stdout, log):
        assert value not in text and value[:8] not in text
    with pytest.raises(ValueError, match="not shown") as caught:
        OpenAIHTTPBackend(HTTPConfig(api_key_env=value))
    assert value not in str(caught.value)


def test_variable_names_and_no_key_are_accepted(monkeypatch, caplog) -> None:
    monkeypatch.setenv("MY_LLM_KEY_2", "secret-value")
    caplog.set_level(logging.INFO)
    for name in ("MY_LLM_KEY_2", "OPENAI_API_KEY", "HF_TOKEN", ""):
        OpenAIHTTPBackend(HTTPConfig(api_key_env=name)).close()
    assert "secret-value" not in caplog.text
