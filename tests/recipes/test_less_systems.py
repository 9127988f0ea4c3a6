"""The systems the LESS loop knows (tools/less_stages.sh): names, thresholds of L_<t>, which need
the LLM stage, and their order in the report."""

from __future__ import annotations

import subprocess

import pytest

from less.report import system_rank
from tests.helpers import ROOT


def stages(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f'. "{ROOT}/tools/less_stages.sh"; max_hypo_wer=0.1; {script}'],
        capture_output=True,
        text=True,
    )


def test_threshold_of_each_system():
    out = stages('for s in L U N L_0.3 L_.25 L_1; do echo "$s $(less_threshold $s)"; done')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:6] == [
        "L 0.1",
        "U 0.1",
        "N 0.1",
        "L_0.3 0.3",
        "L_.25 .25",
        "L_1 1",
    ]


def test_which_systems_need_the_llm():
    out = stages(
        'for s in "N" "S_cont N" "N L" "N L_0.3" "U"; do less_any_llm "$s" && echo yes || echo no; done'
    )
    assert out.stdout.split() == ["no", "no", "yes", "yes", "yes"]


@pytest.mark.parametrize(
    ("systems", "iters", "message"),
    [
        ("S_cont N L L_0.3 L_0.5 U", 1, None),
        ("N L", 3, None),
        ("N L_x", 1, "system L_x: L_<threshold> needs a number after L_ (e.g. L_0.3), not 'x'"),
        ("N L_", 1, "needs a number after L_"),
        ("N Lx", 1, "unknown system 'Lx' (known: S_cont N L L_<threshold> U)"),
        ("N L_0.3", 2, "system L_0.3 runs one iteration (--num-iters 1)"),
        ("L U", 2, "system U runs one iteration (--num-iters 1)"),
    ],
)
def test_system_names_are_checked_before_any_work(systems: str, iters: int, message: str | None):
    out = stages(f'less_check_systems "{systems}" {iters}; echo checked')
    if message is None:
        assert out.returncode == 0 and out.stdout.strip() == "checked", out.stderr
    else:
        assert out.returncode != 0 and "checked" not in out.stdout
        assert message in out.stderr


def test_report_orders_threshold_variants_after_l():
    names = ["U", "L_0.5", "N", "X", "L", "S_cont", "L_0.3", "S", "L_abc"]
    assert sorted(names, key=system_rank) == [
        "S",
        "S_cont",
        "N",
        "L",
        "L_0.3",
        "L_0.5",
        "U",
        "L_abc",
        "X",
    ]


@pytest.mark.parametrize(
    ("systems", "ssl", "given", "message"),
    [
        ("N U", "none", "", "system U needs a text-only corpus for its n-gram LM"),
        ("N U", "none", "unsup_lm_text=text.txt", None),
        ("N L", "speechlm", "", "--ssl speechlm needs a text-only corpus and a unit lexicon"),
        ("N L", "speechlm", "speechlm_text=text.txt", None),
        ("N L", "bestrq", "", None),
    ],
)
def test_loop_refuses_what_the_recipe_cannot_feed_before_any_work(
    systems: str, ssl: str, given: str, message: str | None
):
    # stage 11: past every stage, so a run that passes its checks does nothing and says so
    out = stages(
        f'systems="{systems}" ssl={ssl} {given} num_iters=1 stage=11 stop_stage=11 '
        "train_args=() decode_args=(); less_loop asr zh sup.jsonl.gz dev.jsonl.gz unsup.jsonl.gz; "
        "echo passed"
    )
    if message is None:
        assert out.returncode == 0 and out.stdout.strip() == "passed", out.stderr
    else:
        assert out.returncode != 0 and "passed" not in out.stdout
        assert message in out.stderr and "asr" in out.stderr
