"""egs/mini/less/local/compare_ssl.sh: one recipe run per arm and seed, the arms that others
start from finished first, and the report over seeds. run.sh is a stub that records its flags
and writes what stages 4-5 leave behind (the pretrained encoder, the decoding results)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

STUB_RUN = r"""#!/usr/bin/env bash
set -eu
exp= ssl=none ssl_epochs=0 seed_epochs=0 seed=0 stage=0
args=("$@")
while [ $# -gt 0 ]; do  # later flags win, as in parse_options.sh
  case "$1" in
    --exp) exp=$2 ;; --ssl) ssl=$2 ;; --ssl-epochs) ssl_epochs=$2 ;; --train-seed) seed=$2 ;;
    --seed-epochs) seed_epochs=$2 ;; --stage) stage=$2 ;;
  esac
  shift 2
done
echo "start $exp" >>calls.log
printf '%s\n' "${args[@]}" >"$exp.args"
sleep "$(awk "BEGIN {print $seed * 0.3}")"  # seed 3 ends well before seed 5
if [ "$ssl" != none ] && [ ! -f "$exp/asr/ssl_$ssl/epoch-$ssl_epochs.pt" ]; then
  mkdir -p "$exp/asr/ssl_$ssl"
  echo "pretrained by $exp" >"$exp/asr/ssl_$ssl/epoch-$ssl_epochs.pt"
fi
# the decoding results of the seed (stages 4-5) or of the N student (stages 6-10): CER = seed
# + 10 for bestrq, seed for the others, seed - 1 for a student
cer=$seed dir="$exp/asr/iter0/attention-decoder-rescoring"
case "$exp" in *bestrq_s*) cer=$((seed + 10)) ;; esac
if [ "$stage" -le 5 ]; then
  mkdir -p "$exp/asr/iter0"
  echo "seed of $exp" >"$exp/asr/iter0/epoch-$seed_epochs.pt"
else
  cer=$((seed - 1)) dir="$exp/asr/N/iter1/attention-decoder-rescoring"
fi
mkdir -p "$dir"
for test in dev test_clean test_wild; do
  printf '{"test": "%s", "metric": "CER", "value": %s, "best_setting": "scale_1.0", "command": "decode", "settings": {"scale_1.0": %s}}\n' \
    "$test" "$cer" "$cer" >"$dir/results-$test-epoch-20_avg-5.json"
done
echo "end $exp" >>calls.log
"""


def _recipe(tmp_path: Path) -> Path:
    """A recipe directory beside the real tools/: the real compare_ssl.sh and a stub run.sh."""
    recipe = tmp_path / "repo" / "egs" / "mini" / "less"
    (recipe / "local").mkdir(parents=True)
    shutil.copy(ROOT / "egs" / "mini" / "less" / "local" / "compare_ssl.sh", recipe / "local")
    (recipe / "run.sh").write_text(STUB_RUN)
    (recipe / "run.sh").chmod(0o755)
    (tmp_path / "repo" / "tools").symlink_to(ROOT / "tools")
    return recipe


def _compare(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LESS_VENV=str(Path(sys.executable).parent.parent))
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        ["local/compare_ssl.sh", "--out", "exp_x", "--seed-epochs", "20", *args],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_gentle_arm_fine_tunes_its_seeds_bestrq_encoder_after_that_arm_finished(tmp_path):
    recipe = _recipe(tmp_path)
    result = _compare(recipe, "--arms", "bestrq bestrq_gentle", "--seeds", "3 5", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    exp = recipe / "exp_x"
    for s in (3, 5):
        plain = (exp / f"bestrq_s{s}.args").read_text().splitlines()
        gentle = (exp / f"bestrq_gentle_s{s}.args").read_text().splitlines()
        assert "--ssl-finetune-opts" not in plain
        assert gentle[gentle.index("--ssl") + 1] == "bestrq"
        opts = gentle[gentle.index("--ssl-finetune-opts") + 1]
        assert opts == "--encoder-lr-scale 0.1 --freeze-encoder-batches 200"
        assert gentle[gentle.index("--train-seed") + 1] == str(s)
        # the same seed's pretraining, reused: no second pretrained encoder was written
        link = exp / f"bestrq_gentle_s{s}" / "asr" / "ssl_bestrq"
        assert link.is_symlink()
        assert link.resolve() == (exp / f"bestrq_s{s}" / "asr" / "ssl_bestrq").resolve()
        assert (link / "epoch-10.pt").read_text() == f"pretrained by exp_x/bestrq_s{s}\n"
    # two jobs at a time, but no gentle run starts before every bestrq run has ended
    calls = (recipe / "calls.log").read_text().splitlines()
    last_bestrq_end = max(i for i, c in enumerate(calls) if c.startswith("end exp_x/bestrq_s"))
    first_gentle = min(i for i, c in enumerate(calls) if c.startswith("start exp_x/bestrq_gentle"))
    assert last_bestrq_end < first_gentle
    assert calls[:2] == ["start exp_x/bestrq_s3", "start exp_x/bestrq_s5"]  # in parallel
    table = (exp / "RESULTS.md").read_text()
    assert "| bestrq | S | 0 | dev | CER | 14.00 |" in table  # (13 + 15) / 2
    assert "| bestrq_gentle | S | 0 | dev | CER | 4.00 |" in table


def test_gentle_arm_without_its_bestrq_run_stops_naming_it(tmp_path):
    recipe = _recipe(tmp_path)
    result = _compare(recipe, "--arms", "bestrq_gentle", "--seeds", "7", "--gentle-opts", "--x 1")
    assert result.returncode != 0
    assert "run the bestrq arm of seed 7 first" in result.stderr
    assert not (recipe / "calls.log").exists()


def test_any_pretrained_arm_has_a_gentle_twin_but_scratch(tmp_path):
    recipe = _recipe(tmp_path)
    arms = "scratch speechlm_notext speechlm_notext_gentle"
    result = _compare(
        recipe, "--arms", arms, "--seeds", "2", "--gentle-opts", "--encoder-lr-scale 0.5"
    )
    assert result.returncode == 0, result.stderr
    exp = recipe / "exp_x"
    gentle = (exp / "speechlm_notext_gentle_s2.args").read_text().splitlines()
    for flag, value in (
        ("--ssl", "speechlm"),
        ("--ssl-opts", "--text-weight 0"),
        ("--speechlm-tokenizer", "exp_x/scratch_s2/asr/iter0/epoch-20.pt"),
        ("--ssl-finetune-opts", "--encoder-lr-scale 0.5"),
    ):
        assert gentle[gentle.index(flag) + 1] == value
    link = exp / "speechlm_notext_gentle_s2" / "asr" / "ssl_speechlm"
    assert (link / "epoch-10.pt").read_text() == "pretrained by exp_x/speechlm_notext_s2\n"
    assert "--ssl-opts" not in (exp / "scratch_s2.args").read_text().splitlines()
    result = _compare(recipe, "--arms", "scratch_gentle", "--seeds", "2")
    assert result.returncode != 0 and "scratch has no pretrained encoder" in result.stderr


def test_scratch_student_learns_from_the_scratch_seeds_labels(tmp_path):
    recipe = _recipe(tmp_path)
    result = _compare(recipe, "--arms", "scratch scratch_student", "--seeds", "4")
    assert result.returncode == 0, result.stderr
    exp = recipe / "exp_x"
    args = (exp / "scratch_student_s4.args").read_text().splitlines()

    def last(flag: str) -> str:  # parse_options.sh: the last of a repeated flag wins
        return args[len(args) - 1 - args[::-1].index(flag) + 1]

    assert (last("--stage"), last("--stop-stage")) == ("6", "10")
    assert (last("--systems"), last("--num-iters"), last("--student-init")) == ("N", "1", "scratch")
    assert last("--student-epochs") == "20"  # as long as the seeds
    assert last("--pl-dir") == "exp_x/scratch_student_s4/pl"  # not the shared data/pl
    assert last("--ssl") == "none"
    teacher = exp / "scratch_student_s4" / "asr" / "iter0"
    assert (
        teacher.is_symlink()
        and teacher.resolve() == (exp / "scratch_s4" / "asr" / "iter0").resolve()
    )
    assert (teacher / "epoch-20.pt").read_text() == "seed of exp_x/scratch_s4\n"
    table = (exp / "RESULTS.md").read_text()
    assert "| scratch_student | N | 1 | dev | CER | 3.00 |" in table
    result = _compare(recipe, "--arms", "scratch_student", "--seeds", "9")
    assert result.returncode != 0 and "run the scratch arm of seed 9 first" in result.stderr
