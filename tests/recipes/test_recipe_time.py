"""tools/bench/recipe_time.py: the stage-time report of a recipe run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / "tools" / "bench" / "recipe_time.py"


def load_module():
    spec = importlib.util.spec_from_file_location("recipe_time", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["recipe_time"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def write_timing(path: Path) -> None:
    rows = [
        ("asr+ast", "0", 0.0, 120.0, 120.0, 200.0),
        ("asr", "4", 120.0, 720.0, 600.0, 590.0),
        ("ast", "4", 120.0, 780.0, 660.0, 650.0),
        ("asr", "9:N", 720.0, 900.0, 180.0, 178.0),
        ("asr", "9:L", 900.0, 960.0, 60.0, 59.0),
        ("ast", "9:N", 780.0, 1020.0, 240.0, 230.0),
        ("asr", "4", 2000.0, 2001.0, 1.0, 0.5),  # a rerun that found stage 4 done
    ]
    lines = ["task\tstage\tstart\tend\twall_s\tcpu_s"] + [
        "\t".join(str(v) for v in row) for row in rows
    ]
    path.write_text("\n".join(lines) + "\n")


def test_stage_times_shares_and_elapsed(tmp_path: Path):
    timing = tmp_path / "timing.tsv"
    write_timing(timing)
    module = load_module()
    rows = module.read_timing(timing)
    table = module.format_tables(rows, markdown=True)
    lines = table.splitlines()
    assert lines[0].startswith("| stage | asr wall / CPU min | ast wall / CPU min | asr+ast")
    # stage order: 0, 4, 9:L, 9:N; stage 4 of asr sums both of its lines (10.0 + 0.02 min wall)
    stages = [line.split("|")[1].strip() for line in lines[2:6]]
    assert stages == ["0", "4", "9:L", "9:N"]
    assert "| 4 | 10.0 / 9.8 | 11.0 / 10.8 |" in table
    total_cpu = 200.0 + 590.0 + 650.0 + 178.0 + 59.0 + 230.0 + 0.5
    assert f"{100 * (590.5 + 650.0) / total_cpu:.1f} %" in table
    assert "elapsed (first stage start to last stage end): 33.4 min" in table  # 0 .. 2001 s

    last = module.format_tables(module.read_timing(timing, last_only=True), markdown=False)
    assert "elapsed (first stage start to last stage end): 33.4 min" in last
    assert "asr: wall 4.0 min" in last  # the rerun's line replaced the first stage-4 line


def test_malformed_timing_names_the_line(tmp_path: Path):
    timing = tmp_path / "timing.tsv"
    timing.write_text("task\tstage\tstart\tend\twall_s\tcpu_s\nasr\t4\tx\t1\t1\t1\n")
    result = subprocess.run(["python", str(SCRIPT), str(timing)], capture_output=True, text=True)
    assert result.returncode != 0 and f"{timing}:2" in result.stderr


def test_run_sh_timing_helpers_write_what_the_report_reads(tmp_path: Path):
    exp = tmp_path / "exp"
    script = (
        f'. "{ROOT}/tools/less_stages.sh"; exp="{exp}"; less_time_begin 4 asr; '
        'python3 -c "sum(range(3000000))"; less_time_end'
    )
    subprocess.run(["bash", "-c", script], check=True)
    rows = load_module().read_timing(exp / "timing.tsv")
    assert len(rows) == 1 and rows[0].task == "asr" and rows[0].stage == "4"
    assert rows[0].wall >= 0.0 and rows[0].cpu > 0.0  # the child's CPU time was counted
    assert rows[0].end >= rows[0].start
    empty = tmp_path / "empty.tsv"
    empty.write_text("task\tstage\tstart\tend\twall_s\tcpu_s\n")
    with pytest.raises(SystemExit, match="no stage times"):
        load_module().read_timing(empty)


def test_corpus_and_seed_timings_combine_into_one_run(tmp_path: Path):
    # a --seeds run: stages 0-3 in exp/timing.tsv, a seed's stages in exp/seed<s>/timing.tsv
    corpus, seed = tmp_path / "timing.tsv", tmp_path / "seed42.tsv"
    header = "task\tstage\tstart\tend\twall_s\tcpu_s\n"
    corpus.write_text(header + "asr+ast\t0\t0\t60\t60\t120\n")
    seed.write_text(header + "asr\t4\t60\t660\t600\t600\nast\t4\t60\t1260\t1200\t1200\n")
    result = subprocess.run(
        ["python", str(SCRIPT), str(corpus), str(seed)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    # elapsed from the corpus's start to the last seed stage's end: 1260 s = 21.0 min
    assert "elapsed (first stage start to last stage end): 21.0 min" in result.stdout
    assert "CPU time of all stages: 32.0 min" in result.stdout
    missing = subprocess.run(
        ["python", str(SCRIPT), str(corpus), str(tmp_path / "nope.tsv")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "nope.tsv not found" in missing.stderr
