"""tools/parse_options.sh: the Kaldi-style option parser every run.sh sources."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
stage=0              # first stage to run
stop_stage=100       # last stage to run
use_gpu=false        # train on the GPU
model_name="xs"      # named model configuration
. {ROOT}/tools/parse_options.sh
echo "stage=$stage stop_stage=$stop_stage use_gpu=$use_gpu model_name=$model_name rest=$*"
"""


@pytest.fixture()
def script(tmp_path: Path) -> Path:
    path = tmp_path / "run.sh"
    path.write_text(SCRIPT)
    path.chmod(0o755)
    return path


def run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *args], capture_output=True, text=True)


def test_defaults_and_overrides(script):
    out = run(script).stdout.strip()
    assert out == "stage=0 stop_stage=100 use_gpu=false model_name=xs rest="
    out = run(script, "--stage", "3", "--stop-stage", "5", "--model-name=small", "a", "b").stdout.strip()
    assert out == "stage=3 stop_stage=5 use_gpu=false model_name=small rest=a b"


def test_values_with_spaces_survive(script):
    out = run(script, "--model-name", "x y").stdout.strip()
    assert "model_name=x y " in out


def test_unknown_option_fails_clearly(script):
    result = run(script, "--stgae", "3")
    assert result.returncode == 1
    assert "unknown option --stgae" in result.stderr
    assert result.stdout == ""


def test_missing_value_fails(script):
    result = run(script, "--stage")
    assert result.returncode == 1
    assert "needs a value" in result.stderr


def test_boolean_options_take_only_true_false(script):
    assert "use_gpu=true" in run(script, "--use-gpu", "true").stdout
    result = run(script, "--use-gpu", "yes")
    assert result.returncode == 1
    assert "boolean" in result.stderr


def test_help_lists_options_with_comments_and_values(script):
    result = run(script, "--stage", "2", "--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    stage_line = next(line for line in lines if "--stage " in line)
    assert "first stage to run" in stage_line and "[2]" in stage_line
    assert any("--stop-stage" in line and "[100]" in line for line in lines)
    assert any("--model-name" in line and "named model configuration" in line for line in lines)
    # variables assigned after sourcing are not options
    assert "stage=" not in result.stdout.splitlines()[-1]  # the script body did not run


def test_variables_defined_after_sourcing_are_not_options(tmp_path):
    path = tmp_path / "s.sh"
    path.write_text(f"#!/usr/bin/env bash\nstage=0 # x\n. {ROOT}/tools/parse_options.sh\nlate=1\necho ok\n")
    path.chmod(0o755)
    assert run(path, "--late", "2").returncode == 1
    assert "--late" not in run(path, "--help").stdout


def test_every_recipe_has_help_and_stage_options():
    for run_sh in sorted(ROOT.glob("egs/*/less/run.sh")):
        assert subprocess.run(["bash", "-n", str(run_sh)]).returncode == 0, run_sh
        # started by a relative path from the repository root: run.sh changes directory first
        relative = str(run_sh.relative_to(ROOT))
        result = subprocess.run([relative, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, (run_sh, result.stderr)
        assert "--stage" in result.stdout and "--stop-stage" in result.stdout, run_sh
