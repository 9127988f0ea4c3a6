"""less.bin.train on the tiny mini corpus: exact resume, bad batches, init-from, decode files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet, NumpyFilesWriter
from lhotse.utils import fastcopy

from less.bin import decode as decode_cli
from less.bin import train as train_cli
from less.checkpoint import load_checkpoint
from tests.helpers import flags, same_weights, train_args


@pytest.mark.slow
def test_resume_mid_epoch_reaches_the_same_weights(mini_data: Path, tmp_path: Path):
    torch.set_num_threads(1)
    straight = tmp_path / "straight"
    train_cli.main(train_args(mini_data, straight, "--num-epochs", "2", "--save-every-n", "3"))
    final = load_checkpoint(straight / "epoch-2.pt")
    assert final["train_state"]["batch_idx_train"] > 6  # checkpoint-3 and -6 are mid-epoch 1 / 2

    for kept in ("checkpoint-3.pt", "epoch-1.pt", "checkpoint-6.pt"):
        # a run killed right after writing `kept`: only that file survived
        resumed = tmp_path / f"resumed-{kept}"
        resumed.mkdir()
        shutil.copy(straight / kept, resumed / kept)
        train_cli.main(train_args(mini_data, resumed, "--num-epochs", "2", "--save-every-n", "3"))
        again = load_checkpoint(resumed / "epoch-2.pt")
        assert same_weights(again["model"], final["model"]), kept
        assert same_weights(again["model_avg"], final["model_avg"]), kept
        assert again["train_state"]["batch_idx_train"] == final["train_state"]["batch_idx_train"]

    # a finished run is not redone
    stamp = (straight / "epoch-2.pt").stat().st_mtime_ns
    train_cli.main(train_args(mini_data, straight, "--num-epochs", "2"))
    assert (straight / "epoch-2.pt").stat().st_mtime_ns == stamp


def test_nan_batch_is_skipped_counted_and_named(mini_data: Path, tmp_path: Path):
    torch.set_num_threads(1)
    cuts = CutSet.from_file(mini_data / "fbank" / "mini-asr_cuts_train_sup.jsonl.gz").to_eager()
    victim = cuts[0]
    feats = victim.load_features().copy()
    feats[5:9] = np.nan
    with NumpyFilesWriter(tmp_path / "nan_feats") as writer:
        key = writer.write(victim.id, feats)
        storage = fastcopy(
            victim.features,
            storage_path=str(tmp_path / "nan_feats"),
            storage_key=key,
            storage_type=writer.name,
        )
    broken = CutSet.from_cuts(
        [fastcopy(victim, features=storage), *cuts.subset(last=len(cuts) - 1)]
    )
    broken.to_file(tmp_path / "train.jsonl.gz")
    args = train_args(mini_data, tmp_path / "exp", "--num-epochs", "1")
    args[args.index("--train-cuts") + 1] = str(tmp_path / "train.jsonl.gz")
    train_cli.main(args)
    state = load_checkpoint(tmp_path / "exp" / "epoch-1.pt")["train_state"]
    assert state["skipped_batches"] == 1
    (log_file,) = (tmp_path / "exp" / "log").glob("log-train-*.txt")
    warnings = [
        line
        for line in log_file.read_text().splitlines()
        if "skipped" in line and "WARNING" in line
    ]
    assert len(warnings) == 1 and victim.id in warnings[0]
    assert "1 skipped (inf/NaN)" in log_file.read_text()
    weights = load_checkpoint(tmp_path / "exp" / "epoch-1.pt")["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


@pytest.mark.slow
def test_init_from_teacher_and_decode_result_files(mini_data: Path, seed_model, tmp_path: Path):
    torch.set_num_threads(1)
    teacher = seed_model("asr")
    student = tmp_path / "student"
    train_cli.main(
        train_args(
            mini_data,
            student,
            *flags(
                num_epochs="1", max_batches_per_epoch="1", init_from=str(teacher / "epoch-1.pt")
            ),
        )
    )
    t = load_checkpoint(teacher / "epoch-1.pt")["model"]
    s = load_checkpoint(student / "epoch-1.pt")["model"]
    # one small step from the teacher: close to it, far from a fresh initialisation
    diff = sum(float((t[k] - s[k]).abs().sum()) for k in t if t[k].is_floating_point())
    total = sum(float(t[k].abs().sum()) for k in t if t[k].is_floating_point())
    assert 0 < diff < 0.2 * total

    # the restarted student's schedules began at zero: its one step was batch 1 of epoch 0
    t_state = load_checkpoint(teacher / "epoch-1.pt")["train_state"]
    restarted = load_checkpoint(student / "epoch-1.pt")
    assert restarted["scheduler"]["batch"] == 1 and restarted["scheduler"]["epoch"] == 0
    assert restarted["train_state"]["batch_count"] == pytest.approx(20 / 600)
    # --init-schedule continue: Eden and the Zipformer's batch count go on from the teacher's end
    # (20 s batches, ref_duration 600: the count grows 1/30 per batch), also over generations
    parent = teacher / "epoch-1.pt"
    teacher_batches, teacher_epochs = t_state["batch_idx_train"], 1
    for generation in ("continued", "continued2"):
        out = tmp_path / generation
        train_cli.main(
            train_args(
                mini_data,
                out,
                *flags(
                    num_epochs="1",
                    max_batches_per_epoch="2",
                    init_from=str(parent),
                    init_schedule="continue",
                ),
            )
        )
        ckpt = load_checkpoint(out / "epoch-1.pt")
        # its 2nd (last) step: the teacher's batches + 2
        assert ckpt["scheduler"]["batch"] == teacher_batches + 2
        assert ckpt["scheduler"]["epoch"] == teacher_epochs
        assert ckpt["train_state"]["batch_count"] == pytest.approx((teacher_batches + 2) * 20 / 600)
        assert ckpt["train_state"]["schedule_batches"] == teacher_batches
        parent, teacher_batches, teacher_epochs = (
            out / "epoch-1.pt",
            teacher_batches + 2,
            teacher_epochs + 1,
        )
    from less.model.optim import Eden

    # its LR: Eden at the teacher's batches + 2 and epoch 1 (no warm-up again)
    probe = Eden(torch.optim.SGD([torch.zeros(1)], lr=0.045), 7500, 3.5, warmup_batches=5)
    probe.step_batch(t_state["batch_idx_train"] + 2)
    probe.step_epoch(1)
    continued = load_checkpoint(tmp_path / "continued" / "epoch-1.pt")
    assert continued["optimizer"]["param_groups"][0]["lr"] == pytest.approx(probe.get_last_lr()[0])
    assert restarted["optimizer"]["param_groups"][0]["lr"] != pytest.approx(probe.get_last_lr()[0])
    with pytest.raises(ValueError, match="no training state"):
        torch.save({"model": t}, tmp_path / "export.pt")
        train_cli.main(
            train_args(
                mini_data,
                tmp_path / "bad",
                *flags(
                    num_epochs="1", init_from=str(tmp_path / "export.pt"), init_schedule="continue"
                ),
            )
        )

    test = mini_data / "fbank" / "mini-asr_cuts_test_clean.jsonl.gz"
    decode_cli.main(
        [
            *flags(
                exp_dir=str(teacher),
                epoch="1",
                avg="1",
                method=["ctc-greedy-search", "attention-decoder-rescoring"],
                attention_scales="0.5,1.0",
                test=f"test_clean={test}",
            ),
        ]
    )
    summary = json.loads(
        (teacher / "ctc-greedy-search" / "results-test_clean-epoch-1_avg-1.json").read_text()
    )
    assert summary["metric"] == "CER" and summary["num_cuts"] == len(CutSet.from_file(test))
    recogs = (teacher / "ctc-greedy-search" / "recogs-test_clean-epoch-1_avg-1.txt").read_text()
    assert recogs.count("ref=") == summary["num_cuts"]
    assert (
        teacher
        / "attention-decoder-rescoring"
        / "errs-test_clean-attention_scale_0.5-epoch-1_avg-1.txt"
    ).is_file()
    assert (
        teacher / "attention-decoder-rescoring" / "wer-summary-test_clean-epoch-1_avg-1.txt"
    ).read_text().count("attention_scale_") == 2


def test_ast_training_uses_translations_and_bleu(mini_data: Path, seed_model):
    torch.set_num_threads(1)
    exp = seed_model("ast")  # train_args(..., task="ast") for one epoch
    ckpt = load_checkpoint(exp / "epoch-1.pt")
    assert ckpt["config"]["task"] == "ast"
    # CTC over the Spanish BPE (128), decoder over the English BPE (96)
    assert ckpt["model"]["ctc_output.1.weight"].shape[0] == 128
    assert ckpt["model"]["attention_decoder.output_layer.weight"].shape[0] == 96
    test = mini_data / "fbank" / "mini-ast_cuts_test_clean.jsonl.gz"
    decode_cli.main(
        [
            *flags(
                exp_dir=str(exp),
                epoch="1",
                method=["attention-beam-search", "ctc-greedy-search"],
                beam_size="2",
                test=f"test_clean={test}",
            ),
        ]
    )
    aed = json.loads(
        (exp / "attention-beam-search" / "results-test_clean-epoch-1_avg-1.json").read_text()
    )
    ctc = json.loads(
        (exp / "ctc-greedy-search" / "results-test_clean-epoch-1_avg-1.json").read_text()
    )
    assert aed["metric"] == "BLEU" and ctc["metric"] == "WER"
    assert (exp / "attention-beam-search" / "bleu-summary-test_clean-epoch-1_avg-1.txt").is_file()
    with pytest.raises(ValueError, match="attention-beam-search"):
        decode_cli.main(
            [
                *flags(
                    exp_dir=str(exp),
                    epoch="1",
                    method="attention-decoder-rescoring",
                    test=f"test_clean={test}",
                ),
            ]
        )


@pytest.mark.slow
def test_same_seed_same_weights_and_init_from_the_averaged_teacher(mini_data: Path, tmp_path: Path):
    """--seed seeds torch, Python random (the Zipformer's Balancer/Whiten/bypass draws) and
    numpy: two fresh runs agree exactly; a student started with --init-avg starts from the
    average decoding uses, not the last epoch."""
    import random

    from less.checkpoint import averaged_model_state
    from less.training import init_weights

    torch.set_num_threads(1)
    runs = []
    for name in ("a", "b"):
        random.seed(len(name) * 1000 + ord(name))  # a different global state before each run
        np.random.seed(ord(name))
        torch.manual_seed(ord(name))
        train_cli.main(
            train_args(mini_data, tmp_path / name, "--num-epochs", "2", "--valid-every-epochs", "2")
        )
        runs.append(load_checkpoint(tmp_path / name / "epoch-2.pt"))
    assert same_weights(runs[0]["model"], runs[1]["model"])
    assert same_weights(runs[0]["model_avg"], runs[1]["model_avg"])
    other = tmp_path / "other-seed"
    train_cli.main(train_args(mini_data, other, "--num-epochs", "1", "--seed", "8"))
    first = load_checkpoint(tmp_path / "a" / "epoch-1.pt")["model"]
    assert not same_weights(first, load_checkpoint(other / "epoch-1.pt")["model"])

    # validation only after every 2nd epoch (and the last): epoch 1 logged none
    (log_file,) = (tmp_path / "a" / "log").glob("log-train-*.txt")
    validated = [line for line in log_file.read_text().splitlines() if ": validation loss" in line]
    assert len(validated) == 1 and "epoch 2:" in validated[0]

    averaged, _ = averaged_model_state(tmp_path / "a", 2, 2, use_averaged_model=True)
    assert not same_weights(averaged, runs[0]["model"])
    assert same_weights(init_weights(str(tmp_path / "a" / "epoch-2.pt"), avg=2), averaged)
    assert same_weights(init_weights(str(tmp_path / "a" / "epoch-2.pt")), runs[0]["model"])
    with pytest.raises(ValueError, match="epoch-E.pt"):
        init_weights(str(tmp_path / "a" / "best-valid-loss.pt"), avg=2)


def test_dtype_auto_resolves_by_device():
    from less.utils import native_bf16_cpu, resolve_dtype

    assert resolve_dtype("fp32", torch.device("cpu")) == "fp32"
    assert resolve_dtype("bf16", torch.device("cpu")) == "bf16"
    assert resolve_dtype("auto", torch.device("cpu")) == ("bf16" if native_bf16_cpu() else "fp32")
    assert resolve_dtype("auto", torch.device("cuda")) == "fp32"


def test_pretrained_encoder_frozen_then_fine_tuned_at_its_own_learning_rate(
    mini_data: Path, tmp_path: Path
):
    """--freeze-encoder-batches keeps the loaded modules exactly as loaded for that many
    batches while the fresh ones learn; --encoder-lr-scale gives them their own LR."""
    from less.training import ENCODER_PREFIXES, Trainer

    torch.set_num_threads(1)
    one_batch = ("--max-batches-per-epoch", "2")
    train_cli.main(train_args(mini_data, tmp_path / "src", "--num-epochs", "1", *one_batch))
    source = tmp_path / "src" / "epoch-1.pt"
    loaded = load_checkpoint(source)["model"]
    init = flags(init_encoder_from=str(source), freeze_encoder_batches="2", seed="3")
    args = train_args(mini_data, tmp_path / "ft", *init, *one_batch)

    train_cli.main([*args, "--num-epochs", "1"])  # batches 1-2: the encoder is frozen
    after_two = load_checkpoint(tmp_path / "ft" / "epoch-1.pt")["model"]
    encoder = [k for k in after_two if k.startswith(ENCODER_PREFIXES)]
    heads = [k for k in after_two if not k.startswith(ENCODER_PREFIXES)]
    assert encoder and all(torch.equal(after_two[k], loaded[k]) for k in encoder)
    fresh = Trainer(train_cli.config_from_args(train_cli.get_parser().parse_args(args)))
    torch.manual_seed(3)
    fresh_state = fresh.build_model().state_dict()
    assert any(not torch.equal(after_two[k], fresh_state[k]) for k in heads)  # heads learned

    train_cli.main([*args, "--num-epochs", "2"])  # resumed: batches 3-4 move the encoder too
    after_four = load_checkpoint(tmp_path / "ft" / "epoch-2.pt")["model"]
    assert any(not torch.equal(after_four[k], loaded[k]) for k in encoder)

    scaled = train_args(mini_data, tmp_path / "scaled", *flags(init_encoder_from=str(source)))
    trainer = Trainer(
        train_cli.config_from_args(
            train_cli.get_parser().parse_args([*scaled, "--encoder-lr-scale", "0.1"])
        )
    )
    trainer.setup()
    pretrained, rest = trainer.optimizer.param_groups
    assert pretrained["lr"] == pytest.approx(0.1 * rest["lr"]) and rest["lr"] > 0
    assert set(pretrained["param_names"]) == {
        n for n, _ in trainer.model.named_parameters() if n.startswith(ENCODER_PREFIXES)
    }

    plain = train_args(mini_data, tmp_path / "plain", "--encoder-lr-scale", "0.1")
    with pytest.raises(SystemExit, match="go with --init-encoder-from"):
        Trainer(train_cli.config_from_args(train_cli.get_parser().parse_args(plain))).setup()
