"""Job launchers with Kaldi's run.pl/slurm.pl convention: tools/run_local.sh and tools/run_slurm.sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import ROOT, flags

LOCAL = ROOT / "tools" / "run_local.sh"
SLURM = ROOT / "tools" / "run_slurm.sh"


def test_local_jobs_substitute_the_index_and_limit_parallelism(tmp_path: Path):
    # each job records when it starts and ends; at most 2 may overlap
    script = (
        f"echo start JOB $(date +%s%N) >> {tmp_path}/events; sleep 0.3; "
        f"echo end JOB $(date +%s%N) >> {tmp_path}/events; echo out-JOB"
    )
    result = subprocess.run(
        [
            str(LOCAL),
            "--max-jobs",
            "2",
            "JOB=0:4",
            str(tmp_path / "log" / "x.JOB.log"),
            "bash",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for job in range(5):
        log = (tmp_path / "log" / f"x.{job}.log").read_text()
        assert f"out-{job}\n" in log and log.rstrip().splitlines()[-1].startswith("# ended")
        assert "exit status 0," in log
    running, most = 0, 0
    events = sorted(
        (int(t), kind)
        for kind, _, t in (line.split() for line in (tmp_path / "events").read_text().splitlines())
    )
    for _, kind in events:
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == 2


def test_local_failures_are_named_and_fail_the_array(tmp_path: Path):
    result = subprocess.run(
        [str(LOCAL), "JOB=1:3", str(tmp_path / "y.JOB.log"), "bash", "-c", "exit $(( JOB == 2 ))"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert (
        f"job 2 failed; see {tmp_path / 'y.2.log'}" in result.stderr
        and "1 of 3 jobs failed" in result.stderr
    )
    assert "exit status 1," in (tmp_path / "y.2.log").read_text()
    single = subprocess.run(
        [str(LOCAL), str(tmp_path / "one.log"), "echo", "a b"], capture_output=True, text=True
    )
    assert single.returncode == 0 and "a b" in (tmp_path / "one.log").read_text()


FAKE_SBATCH = """#!/usr/bin/env bash
# a stand-in for sbatch --wait --array: records its arguments, runs every task here
echo "$@" >> {calls}
script="${{@: -1}}"
array=""
for a in "$@"; do case "$a" in --array=*) array=${{a#--array=}} ;; esac; done
range=${{array%%%*}}
rc=0
for (( i = ${{range%-*}}; i <= ${{range#*-}}; i++ )); do
  SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_JOB_ID=77 bash "$script" || rc=1
done
echo 77
exit $rc
"""


def test_slurm_array_is_submitted_with_the_resources_and_runs_every_task(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls"
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(calls=calls))
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [
            str(SLURM),
            *flags(time="1:00:00", mem="4G", cpus="2", gpus="1", partition="gpu", max_jobs="3"),
            "JOB=0:3",
            "exp/log/pl.JOB.log",
            "bash",
            "-c",
            "echo shard JOB of 4 in $PWD; exit $(( JOB == 3 ))",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
    )
    call = calls.read_text().split()
    for flag in (
        "--array=0-3%3",
        "--time=1:00:00",
        "--mem=4G",
        "--cpus-per-task=2",
        "--gres=gpu:1",
        "--partition=gpu",
        "--wait",
        "--job-name=pl.all",
    ):
        assert flag in call, call
    assert call[-1] == "exp/log/q/pl.all.sh"
    for job in range(3):
        log = (work / "exp" / "log" / f"pl.{job}.log").read_text()
        assert (
            f"shard {job} of 4 in {work}" in log
            and "exit status 0," in log
            and "Slurm job 77_" in log
        )
    assert (
        result.returncode == 1
        and "task 3 failed" in result.stderr
        and "1 of 4 tasks failed" in result.stderr
    )
    no_sbatch = subprocess.run(
        [str(SLURM), "x.log", "true"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
        cwd=work,
    )
    assert no_sbatch.returncode == 2 and "sbatch not found" in no_sbatch.stderr


def test_recipes_pseudo_label_in_shards_through_the_launcher(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/usr/bin/env bash\necho "$@" >> "{tmp_path}/calls"\n')
    (bin_dir / "python").chmod(0o755)
    stages = ROOT / "tools" / "less_stages.sh"
    script = (
        f"set -eu; exp={tmp_path}/exp data={tmp_path}/data unsup_part=unsup seed_epochs=4 student_epochs=2 "
        f'avg=2 beam_size=4 pl_jobs=3 cmd="{LOCAL} --max-jobs 2"; . {stages}; '
        "less_pseudo_label asr N 1 in.jsonl.gz --num-threads 1"
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    calls = sorted((tmp_path / "calls").read_text().splitlines())
    assert len(calls) == 3
    for shard, call in enumerate(calls):
        assert call.startswith("-m less.bin.pseudo_label --iter 1")
        assert call.endswith(f"--num-threads 1 --num-shards 3 --shard-id {shard}")
        assert f"--out-cuts {tmp_path}/data/pl/asr/iter1/unsup_cuts_pl.jsonl.gz" in call
        assert (tmp_path / "exp" / "log" / f"pseudo_label_asr_N_iter1.{shard}.log").is_file()


def test_both_launchers_refuse_a_bad_job_array_before_running_anything(tmp_path: Path):
    # an empty range, a missing command, too few arguments: exit 2, the launcher named, no job
    # run, no sbatch called (sbatch is present here: the Slurm launcher gets past that check)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/usr/bin/env bash\necho called >> {tmp_path}/sbatch\n")
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    marker = tmp_path / "ran"
    for script in (LOCAL, SLURM):
        name = script.name
        cases = {
            f"{name}: empty job range JOB=3:1": ["JOB=3:1", "x.JOB.log", "touch", str(marker)],
            f"{name}: no command": ["JOB=1:2", "x.JOB.log"],
            f"usage: {name}": ["x.log"],
        }
        for message, args in cases.items():
            result = subprocess.run(
                [str(script), *args], capture_output=True, text=True, env=env, cwd=tmp_path
            )
            assert result.returncode == 2 and message in result.stderr, (name, args, result)
    assert not marker.exists() and not (tmp_path / "sbatch").exists()
