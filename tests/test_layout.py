"""The experiment layout (less.layout) and the recipes' shell functions that build the same paths."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from less import layout
from tests.helpers import ROOT

STAGES = ROOT / "tools" / "less_stages.sh"
CASES = [
    (task, system, it)
    for task in ("asr", "ast")
    for system in ("N", "L", "L_0.3", "U")
    for it in (1, 2, 3)
]


def _shell(lines: list[str]) -> list[str]:
    script = (
        "set -eu\nexp=/e data=/d pl_dir=/p seed_epochs=14 student_epochs=4\n"
        f". {STAGES}\n" + "\n".join(lines)
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_shell_and_python_agree_on_every_path() -> None:
    lines = []
    for task, system, it in CASES:
        lines += [
            f'read -r t e <<<"$(less_teacher {task} {system} {it})"; echo "$t"',
            f"less_pl_dir {task} {system} {it}",
            f"less_system_dir {task} {system} {it}",
        ]
    out = _shell(lines)
    expected = []
    for task, system, it in CASES:
        expected += [
            str(layout.teacher_dir("/e", task, system, it)),
            str(layout.teacher_pl_dir("/p", task, system, it)),
            str(layout.system_pl_dir("/p", task, system, it)),
        ]
    assert out == expected


def test_students_train_where_the_report_looks(tmp_path) -> None:
    # less_train_student's --exp-dir, with python replaced by an echo
    out = _shell(
        [
            'train_cmd="echo"',
            "student_init=scratch ssl=none pl_ratio=0 unsup_part=u",
            f"pl_dir={tmp_path}",
            "python() { :; }",
            "mkdir -p $pl_dir/asr/N/iter2",
            ": >$pl_dir/asr/N/iter2/u_cuts_kept.jsonl.gz",
            "less_train_student asr N 2 sup.jsonl.gz dev.jsonl.gz",
        ]
    )
    words = out[-1].split()
    exp_dir = words[words.index("--exp-dir") + 1]
    assert Path(exp_dir) == layout.model_dir("/e", "asr", "N", 2)
    where = layout.parse_result_path(
        Path(exp_dir).relative_to("/e") / "ctc-greedy-search" / "results-dev.json"
    )
    assert where == layout.ResultPath("asr", "N", 2, "ctc-greedy-search")


def test_result_paths_parse_and_reject() -> None:
    assert layout.parse_result_path(Path("asr/iter0/m/r.json")) == layout.ResultPath(
        "asr", "S", 0, "m"
    )
    assert layout.parse_result_path(Path("ast/L_0.3/iter1/m/r.json")) == layout.ResultPath(
        "ast", "L_0.3", 1, "m"
    )
    for bad in (
        "asr/iterX/m/r.json",
        "asr/N/iter0/m/r.json",
        "asr/N/iteration1/m/r.json",
        "asr/m/r.json",
    ):
        assert layout.parse_result_path(Path(bad)) is None, bad
    with pytest.raises(ValueError, match="seed model S"):
        layout.model_dir("/e", "asr", "N", 0)
    with pytest.raises(ValueError, match="students start at iteration 1"):
        layout.teacher_dir("/e", "asr", "N", 0)


def test_shard_names() -> None:
    out = Path("pl/asr/iter1/unsup_wild_cuts_pl.jsonl.gz")
    assert layout.shard_path(out, 0, 1) == out  # unsharded: the output itself
    assert layout.shard_path(out, 1, 4).name == "unsup_wild_cuts_pl.shard1of4.jsonl.gz"
    assert layout.shard_path("x/a.jsonl", 2, 3) == Path("x/a.shard2of3.jsonl")
    assert layout.shard_suffix(3, 4) == ".shard3of4" and layout.shard_suffix(0, 1) == ""
    for bad in ((4, 4), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="shard id"):
            layout.shard_suffix(*bad)


def test_manifest_stem() -> None:
    assert layout.manifest_stem("pl/a_cuts_llm.jsonl.gz") == "a_cuts_llm"
    assert layout.manifest_stem(Path("x/b.json")) == "b"
    assert layout.manifest_stem("c.tar.gz") == "c.tar"  # not a manifest: Path.stem
