"""The mini recipe's self-supervised path: --ssl pretrains the encoder on unsup_wild in
stage 4, the seed (and every scratch student) starts its encoder from it, and stage 5
measures the pretrained encoder's ABX error with alignments made by the seed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from less.checkpoint import load_checkpoint
from tests.helpers import ROOT, flags

RUN = ROOT / "egs" / "mini" / "less" / "run.sh"
STAGES = ROOT / "tools" / "less_stages.sh"


def _student_command(tmp_path: Path, ssl: str, student_init: str, finetune_opts: str = "") -> str:
    """What less_train_student runs, with `python` replaced by an echo."""
    script = f"""
set -eu
exp={tmp_path}/exp data={tmp_path}/data unsup_part=unsup_wild student_epochs=3 seed_epochs=4 avg=2
pl_ratio=0 student_init={student_init} ssl={ssl} ssl_epochs=7 train_cmd="echo TRAIN"
ssl_finetune_opts="{finetune_opts}"
python() {{ :; }}  # the mix step
. {STAGES}
mkdir -p {tmp_path}/data/pl/asr/L/iter1  # stage 8's kept cuts, which stage 9 checks for
: >{tmp_path}/data/pl/asr/L/iter1/unsup_wild_cuts_kept.jsonl.gz
less_train_student asr L 1 sup.jsonl.gz dev.jsonl.gz --model xs
"""
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_students_start_from_the_pretrained_encoder_or_their_teacher(tmp_path: Path):
    scratch_ssl = _student_command(tmp_path, "birq", "scratch")
    assert f"--init-encoder-from {tmp_path}/exp/asr/ssl_birq/epoch-7.pt" in scratch_ssl
    # a student initialised from its teacher already holds a pretrained encoder
    teacher = _student_command(tmp_path, "birq", "teacher")
    assert (
        f"--init-from {tmp_path}/exp/asr/iter0/epoch-4.pt" in teacher
        and "--init-encoder-from" not in teacher
    )
    plain = _student_command(tmp_path, "none", "scratch")
    assert "--init-" not in plain
    # the flags of fine-tuning a pretrained encoder go wherever that encoder is loaded
    gentle = "--encoder-lr-scale 0.1 --freeze-encoder-batches 20"
    assert gentle in _student_command(tmp_path, "bestrq", "scratch", gentle)
    assert "--encoder-lr" not in _student_command(tmp_path, "bestrq", "teacher", gentle)
    speechlm = _student_command(tmp_path, "speechlm", "scratch", gentle)
    assert "--init-prefixes encoder_embed.,encoder.,unit_encoder.,ctc_output." in speechlm


def test_real_recipes_pretrain_in_their_dtype_through_ssl_cmd(tmp_path: Path):
    """less_model_args (the real recipes' flags) and less_ssl_pretrain's launcher."""
    cuts = tmp_path / "unsup.jsonl.gz"
    cuts.write_bytes(b"")
    script = f"""
set -eu
exp={tmp_path}/exp ssl=bestrq ssl_epochs=3 ssl_opts="--quantizer-seed 4"
model=medium max_duration=600 dtype=bf16 train_workers=4 num_threads=0 model_overrides=''
ssl_cmd="echo torchrun --nproc-per-node 8 -m less.bin.ssl_pretrain"
. {STAGES}
less_model_args --lang-dir data/lang_char
less_ssl_pretrain asr {cuts} "${{ssl_args[@]}}"
"""
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        *"torchrun --nproc-per-node 8 -m less.bin.ssl_pretrain --method bestrq".split(),
        *flags(train_cuts=str(cuts), exp_dir=f"{tmp_path}/exp/asr/ssl_bestrq", num_epochs="3"),
        *flags(model="medium", max_duration="600", dtype="bf16", num_workers="4"),
        *flags(num_threads="0", quantizer_seed="4"),
    ]


@pytest.mark.slow
def test_ssl_pretraining_stage_initialises_the_seed_and_measures_abx(
    mini_data: Path, tmp_path: Path
):
    exp = tmp_path / "exp"
    args = [
        str(RUN),
        *flags(
            stage="4",
            stop_stage="5",
            tasks="asr",
            data=str(mini_data),
            exp=str(exp),
            ssl="birq",
            ssl_epochs="1",
        ),
        "--ssl-opts",
        "--enhanced-start-batches=0 --enhanced-warmup-batches=1 --codebook-size=64",
        *flags(
            seed_epochs="1",
            max_duration="20",
            avg="1",
            beam_size="2",
            num_threads="1",
            train_workers="0",
            noise_aug="false",
            abx_layers="2 final",
        ),
        "--abx-opts",
        "--context any --max-group-size 3",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    pretrained = load_checkpoint(exp / "asr" / "ssl_birq" / "epoch-1.pt")
    assert pretrained["ssl_method"] == "birq"
    assert pretrained["config"]["objective"]["codebook_size"] == 64
    log_text = "".join(
        p.read_text() for p in (exp / "asr" / "iter0" / "log").glob("log-train-*.txt")
    )
    assert f"initialised the encoder from {exp}/asr/ssl_birq/epoch-1.pt" in log_text
    seed = load_checkpoint(exp / "asr" / "iter0" / "epoch-1.pt")
    assert seed["config"]["init_encoder_from"].endswith("ssl_birq/epoch-1.pt")
    # the seed trained on from the pretrained encoder: same tensors, moved by one epoch
    key = next(
        k
        for k in pretrained["model"]
        if k.startswith("encoder.") and pretrained["model"][k].numel() > 1000
    )
    assert seed["model"][key].shape == pretrained["model"][key].shape
    assert not torch.equal(seed["model"][key], pretrained["model"][key])

    for split in ("test_clean", "test_wild"):
        abx = json.loads((exp / "asr" / "ssl_birq" / f"abx_{split}.json").read_text())
        assert abx["checkpoint"].endswith("ssl_birq/epoch-1.pt")
        assert set(abx["layers"]) == {"fbank", "2", "final"}
        for layer in abx["layers"].values():
            # a tiny test set may have no speaker with two utterances: then "within" has no pairs
            assert layer["items"] > 0 and layer["within_pairs"] + layer["across_pairs"] > 0
            for kind in ("within", "across"):
                assert layer[f"{kind}_pairs"] == 0 or 0.0 <= layer[kind] <= 1.0
        # units: the exact phones of espeak-ng's events (made once per corpus), not a CTC alignment
        phones = mini_data / "phones" / f"asr_{split}.phones.jsonl"
        assert abx["alignments"] == str(phones) and phones.is_file()
        assert not (exp / "asr" / "iter0" / f"align_{split}.jsonl").exists()

    # a rerun finds the pretraining, the seed and the ABX results done
    stamps = {p: p.stat().st_mtime_ns for p in (exp / "asr" / "ssl_birq").glob("*.*")}
    again = subprocess.run(args, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.slow
def test_speechlm_stage_makes_units_pretrains_and_fine_tunes_from_the_uctc_head(
    mini_data: Path, tmp_path: Path
):
    exp = tmp_path / "exp"
    args = [
        str(RUN),
        *flags(
            stage="4",
            stop_stage="4",
            tasks="asr",
            data=str(mini_data),
            exp=str(exp),
            ssl="speechlm",
            ssl_epochs="1",
            speechlm_unit_layers="1",
            seed_epochs="1",
            max_duration="20",
            num_threads="1",
            train_workers="0",
            noise_aug="false",
        ),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    units = exp / "asr" / "speechlm_units"
    assert (units / "units.txt").is_file() and (units / "text_units.jsonl.gz").is_file()
    pretrained = load_checkpoint(exp / "asr" / "ssl_speechlm" / "epoch-1.pt")
    assert pretrained["ssl_method"] == "speechlm"
    assert pretrained["config"]["speechlm"]["unit_encoder_layers"] == 1
    tokenizer = load_checkpoint(exp / "asr" / "speechlm_tokenizer" / "epoch-1.pt")
    assert not any(
        k.startswith("unit_encoder.") for k in tokenizer["model"]
    )  # a plain seed makes the units
    seed = load_checkpoint(exp / "asr" / "iter0" / "epoch-1.pt")
    assert seed["config"]["init_prefixes"] == [
        "encoder_embed.",
        "encoder.",
        "unit_encoder.",
        "ctc_output.",
    ]
    assert seed["config"]["model_overrides"] == {"unit_encoder_layers": 1}
    assert (
        seed["model"]["ctc_output.1.weight"].shape
        == pretrained["model"]["ctc_output.1.weight"].shape
    )

    refused = subprocess.run(
        [*args[:6], "asr ast", *args[7:]], capture_output=True, text=True, env=env
    )
    assert refused.returncode != 0 and "--ssl speechlm is Mandarin only" in refused.stderr
