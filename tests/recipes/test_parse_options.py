"""tools/parse_options.sh: the Kaldi-style option parser every run.sh sources."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, flags

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
    out = run(
        script, "--stage", "3", "--stop-stage", "5", "--model-name=small", "a", "b"
    ).stdout.strip()
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
    path.write_text(
        f"#!/usr/bin/env bash\nstage=0 # x\n. {ROOT}/tools/parse_options.sh\nlate=1\necho ok\n"
    )
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


def test_environment_variables_are_not_options(script):
    """Only the script's own assignments are options: `--PATH /x` used to be taken."""
    env = {**os.environ, "LESS_TEST_EXPORTED": "1"}
    for option in ("--PATH", "--HOME", "--LESS-TEST-EXPORTED", "--less-test-exported"):
        result = subprocess.run(
            [str(script), option, "/x"], capture_output=True, text=True, env=env
        )
        assert result.returncode == 1, option
        assert f"unknown option {option}" in result.stderr
        assert result.stdout == ""  # the script body did not run with PATH=/x
    # an option that is also in the environment is still an option (the script assigned it)
    result = subprocess.run(
        [str(script), "--stage", "4"],
        capture_output=True,
        text=True,
        env={**os.environ, "stage": "9"},
    )
    assert result.stdout.startswith("stage=4 ")


def test_only_assignments_at_the_start_of_a_line_before_sourcing_are_options(tmp_path):
    path = tmp_path / "s.sh"
    path.write_text(
        "#!/usr/bin/env bash\n"
        "set -euo pipefail\n"
        "# . parse_options.sh is sourced below (a comment naming it does not end the options)\n"
        "stage=0          # first stage\n"
        "if true; then\n"
        "  nested=1       # indented: not an option\n"
        "fi\n"
        "local_dir=a      # a directory\n"
        f". {ROOT}/tools/parse_options.sh\n"
        'echo "stage=$stage nested=$nested local_dir=$local_dir"\n'
    )
    path.chmod(0o755)
    assert (
        run(path, "--stage", "2", "--local-dir", "b").stdout.strip()
        == "stage=2 nested=1 local_dir=b"
    )
    result = run(path, "--nested", "5")
    assert result.returncode == 1 and "unknown option --nested" in result.stderr
    help_text = run(path, "--help").stdout
    assert "--local-dir" in help_text and "a directory" in help_text and "--nested" not in help_text


def test_a_caller_without_a_readable_file_gets_its_unexported_variables(tmp_path):
    """`bash -c` (no script file to scan): set, not exported, lower-case names only."""
    code = f'stage=0; model_name=xs; . {ROOT}/tools/parse_options.sh; echo "stage=$stage model_name=$model_name"'
    result = subprocess.run(
        ["bash", "-c", code, "no-such-file", "--stage", "3", "--model-name", "m"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stage=3 model_name=m"
    for option in ("--PATH", "--IFS", "--HOSTNAME"):
        result = subprocess.run(
            ["bash", "-c", code, "no-such-file", option, "x"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 1 and "unknown option" in result.stderr, option


def test_option_values_are_never_glob_expanded(tmp_path: Path):
    (tmp_path / "a_file.txt").write_text("x")
    script = tmp_path / "run.sh"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
train_opts=          # more training flags
. {ROOT}/tools/parse_options.sh
cd {tmp_path}
args() {{ echo "--lr 1 $train_opts"; }}
# shellcheck disable=SC2046
printf '[%s]' $(args)
""")
    script.chmod(0o755)
    out = run(script, "--train-opts", "* --x=y").stdout
    assert out == "[--lr][1][*][--x=y]"  # split into words, '*' not replaced by a_file.txt


def test_mini_recipe_passes_a_star_on_to_training_literally(tmp_path: Path):
    recipe = ROOT / "egs" / "mini" / "less" / "run.sh"
    # the inputs stage 4 checks for (the training command is an echo: their content is unused)
    for name in ("fbank/mini-asr_cuts_train_sup.jsonl.gz", "fbank/mini-asr_cuts_dev.jsonl.gz"):
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).touch()
    (tmp_path / "data" / "lang_char").mkdir()
    (tmp_path / "data" / "lang_char" / "tokens.txt").touch()
    result = subprocess.run(
        [
            str(recipe),
            *flags(
                stage="4",
                stop_stage="4",
                tasks="asr",
                exp=str(tmp_path / "exp"),
                data=str(tmp_path / "data"),
                train_cmd="echo TRAIN",
                train_opts="*",
            ),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("TRAIN"))
    assert line.endswith(" *") and "RESULTS.md" not in line and "run.sh" not in line


def test_a_sourced_options_file_adds_its_options_in_place(tmp_path: Path):
    """A `*_options.sh` file sourced before parse_options.sh (path with a $VARIABLE) gives
    options, listed by --help where it is sourced, with their comments; a plain sourced file
    (not *_options.sh) adds none."""
    (tmp_path / "shared_options.sh").write_text(
        "shared_dir=data      # where the shared data lives\nbatch=16             # batch size\n"
    )
    (tmp_path / "helpers.sh").write_text("helper_value=1  # not an option\n")
    path = tmp_path / "run.sh"
    path.write_text(
        '#!/usr/bin/env bash\nset -euo pipefail\nhere=$(dirname "$0")\n'
        "first=1              # the script's own, before\n"
        '. "$here/shared_options.sh"\n. "$here/helpers.sh"\n'
        "last=2               # the script's own, after\n"
        f". {ROOT}/tools/parse_options.sh\n"
        'echo "shared_dir=$shared_dir batch=$batch first=$first last=$last"\n'
    )
    path.chmod(0o755)
    assert run(path, "--batch", "4", "--shared-dir", "x").stdout.strip() == (
        "shared_dir=x batch=4 first=1 last=2"
    )
    help_text = run(path, "--help").stdout
    names = [name for name in ("--first", "--shared-dir", "--batch", "--last") if name in help_text]
    assert names == ["--first", "--shared-dir", "--batch", "--last"], help_text
    assert sorted(names, key=help_text.index) == names  # in the order of the script
    assert "where the shared data lives" in help_text
    result = run(path, "--helper-value", "2")
    assert result.returncode == 1 and "unknown option --helper-value" in result.stderr
