"""Speech-image grounding (less.ssl.grounding) and its place in ssl_pretrain."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet, MonoCut, NumpyFilesWriter, SupervisionSegment
from lhotse.features.base import Features

from less.bin import ssl_pretrain
from less.checkpoint import load_checkpoint
from less.ssl.grounding import (
    AttentionPool,
    GroundingConfig,
    PairedBatches,
    SceneImages,
    info_nce,
    info_nce_logits,
    retrieval_recall,
)
from tests.helpers import SMALL_ZIPFORMER as SMALL
from tests.helpers import flags, ssl_args

NUM_SCENES = 8
PALETTE = [
    (220, 30, 30),
    (30, 160, 30),
    (30, 30, 220),
    (230, 160, 0),
    (150, 0, 150),
    (0, 170, 170),
    (90, 90, 90),
    (240, 100, 180),
]


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------- InfoNCE
@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_info_nce_is_log_batch_size_when_all_embeddings_are_equal(scale: float):
    vector = torch.randn(16)
    same = vector.expand(6, 16)
    loss = info_nce(same, same.clone(), [f"s{i}" for i in range(6)], scale)
    assert loss.item() == pytest.approx(math.log(6), abs=1e-5)


def test_same_scene_pairs_are_not_negatives():
    vector = torch.randn(16)
    # two utterances of one scene, identical embeddings: no negative is left, the loss is 0
    # (with the other pair as a negative it would be log 2)
    two = vector.expand(2, 16)
    assert info_nce(two, two.clone(), ["a", "a"], 10.0).item() == pytest.approx(0.0, abs=1e-6)
    assert info_nce(two, two.clone(), ["a", "b"], 10.0).item() == pytest.approx(
        math.log(2), abs=1e-5
    )
    # equal embeddings, keys a a b c: rows/columns of a count 3 candidates, those of b and c 4
    four = vector.expand(4, 16)
    expected = (2 * math.log(3) + 2 * math.log(4)) / 4
    assert info_nce(four, four.clone(), ["a", "a", "b", "c"], 3.0).item() == pytest.approx(
        expected, abs=1e-5
    )
    # the loss does not depend on the similarity of an utterance to another utterance's
    # image of its own scene: zero gradient there, and not with distinct scenes
    logits = torch.randn(4, 4, requires_grad=True)
    info_nce_logits(logits, ["a", "a", "b", "c"]).backward()
    assert logits.grad[0, 1] == 0 and logits.grad[1, 0] == 0
    assert (logits.grad[2:, :] != 0).all() and logits.grad[0, 2] != 0
    logits.grad = None
    info_nce_logits(logits, ["a", "d", "b", "c"]).backward()
    assert logits.grad[0, 1] != 0 and logits.grad[1, 0] != 0


def test_retrieval_recall_is_one_for_identical_embeddings_and_chance_for_random():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(300, 32, generator=g)
    keys = [f"s{i}" for i in range(300)]
    assert retrieval_recall(emb, emb.clone(), keys) == {"r1": 1.0, "r5": 1.0}
    random_recall = retrieval_recall(torch.randn(300, 32, generator=g), emb, keys)
    assert random_recall["r1"] < 0.03 and random_recall["r5"] < 0.06  # chance: 1/300 and 5/300
    # a scene shared by two utterances is one gallery entry; retrieving it is correct for both
    speech = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    image = torch.tensor(
        [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]
    )  # utterance 1's own image is never looked at
    assert retrieval_recall(speech, image, ["a", "a", "b"], ks=(1,)) == {"r1": 1.0}
    assert retrieval_recall(speech, image, ["a", "b", "c"], ks=(1, 2))["r1"] == pytest.approx(2 / 3)


def test_attention_pooling_ignores_padded_frames():
    torch.manual_seed(0)
    pool = AttentionPool(16, 8)
    frames = torch.randn(3, 20, 16)
    lens = torch.tensor([20, 12, 5])
    out = pool(frames, lens)
    padded = frames.clone()
    padded[1, 12:] = 1e4
    padded[2, 5:] = float("nan")
    assert torch.equal(pool(padded, lens), out)
    # and each utterance pools as it would alone
    alone = pool(frames[2:, :5], lens[2:])
    assert torch.allclose(alone, out[2:], atol=1e-6)
    with pytest.raises(ValueError, match="at least one frame"):
        pool(frames, torch.tensor([20, 0, 5]))


# --------------------------------------------------------------- scenes
def draw_scene(path: Path, scene: int) -> None:
    """A white 64 x 64 image with the scene's coloured shapes (as render_scenes draws icons)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(img)
    colour = PALETTE[scene % len(PALETTE)]
    for copy in range(1 + scene % 3):
        x, y = 6 + 18 * copy, 8 + 5 * scene
        box = (x, y, x + 14, y + 14)
        (draw.ellipse if scene % 2 else draw.rectangle)(box, fill=colour)
    img.save(path)


def write_scenes(root: Path, rows: list[tuple[str, int]]) -> Path:
    """render_scenes' layout: images/<scene>.png and scenes.jsonl (id, scene, image)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for uid, scene in rows:
        key = f"{scene:04x}"
        if not (root / "images" / f"{key}.png").is_file():
            draw_scene(root / "images" / f"{key}.png", scene)
        lines.append(
            json.dumps(
                {"id": uid, "scene": key, "image": f"images/{key}.png", "split": "train_sup"}
            )
        )
    (root / "scenes.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_scene_images_map_cuts_by_supervision_id_and_name_missing_files(tmp_path: Path):
    root = write_scenes(tmp_path / "scenes", [("utt-1", 1), ("utt-2", 1), ("cut-3", 2)])
    scenes = SceneImages(root)
    sup = SupervisionSegment(id="utt-2", recording_id="r", start=0.0, duration=1.0)
    assert scenes.key(MonoCut("utt-2-0", 0.0, 1.0, 0, supervisions=[sup])) == "0001"
    assert scenes.has(MonoCut("cut-3", 0.0, 1.0, 0))  # no supervision: the cut id
    assert not scenes.has(MonoCut("other", 0.0, 1.0, 0))
    image = scenes.image("0001")
    assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
    assert image is scenes.image("0001") and scenes.images(["0001", "0002"]).shape == (2, 3, 64, 64)
    assert int(image[:, 0, 63].min()) == 255  # the white background, as drawn

    (root / "images" / "0002.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"scenes.jsonl:3: the image .*0002.png of utterance cut-3"
    ):
        SceneImages(root)
    with (root / "scenes.jsonl").open("a") as f:
        f.write('{"id": "utt-9", "scene": "0009"}\n')
    (root / "images" / "0002.png").write_bytes((root / "images" / "0001.png").read_bytes())
    with pytest.raises(ValueError, match=r"scenes.jsonl:4: malformed line .*KeyError"):
        SceneImages(root)


def test_paired_batches_depend_on_the_index_alone_and_mix_both_languages():
    cuts = [MonoCut(f"{lang}-{i}", 0.0, 2.0, 0) for lang in ("zh", "es") for i in range(10)]
    batches = PairedBatches(cuts, max_duration=8.0, seed=3)
    assert len(batches) == 5
    again = PairedBatches(cuts, max_duration=8.0, seed=3)
    assert [c.id for c in again[7]] == [c.id for c in batches[7]]
    for p in range(2):  # every pass uses every cut once; passes differ in order
        ids = [c.id for i in range(5) for c in batches[5 * p + i]]
        assert sorted(ids) == sorted(c.id for c in cuts)
    assert [c.id for c in batches[0]] != [c.id for c in batches[5]]
    langs = [{c.id[:2] for c in batches[i]} for i in range(5)]
    assert (
        sum(len(s) == 2 for s in langs) >= 3
    )  # shuffled together, not one language after the other
    with pytest.raises(ValueError, match="cannot hold"):
        PairedBatches(cuts, max_duration=1.0)


# ------------------------------------------------------------ pretraining
def synthetic_corpus(root: Path) -> dict[str, Path]:
    """Two 'languages' of 12 utterances over 8 scenes (scenes 0-3 twice per language), fbank
    whose mel bands carry the scene (a different band per language), plus two zh cuts
    without a scene; cut ids differ from the supervision ids that scenes.jsonl uses."""
    rng = np.random.default_rng(0)
    rows, paths = [], {}
    for lang_index, lang in enumerate(("zh", "es")):
        cuts = []
        with NumpyFilesWriter(root / f"feats_{lang}") as writer:
            for i in range(12 + 2 * (lang == "zh")):
                scene = i % NUM_SCENES
                uid = f"{lang}-utt{i:02d}"
                frames = 170 + 20 * (i % 4)
                feats = (rng.normal(0.0, 0.5, (frames, 80)) - 5.0).astype(np.float32)
                band = 8 * scene + 2 if lang_index == 0 else 72 - 8 * scene
                feats[:, band : band + 5] += 3.0
                if lang_index == 1:
                    feats[::20, :] += 1.0
                key = writer.write(uid, feats)
                duration = frames * 0.01
                features = Features(
                    type="fbank",
                    num_frames=frames,
                    num_features=80,
                    frame_shift=0.01,
                    sampling_rate=16000,
                    start=0.0,
                    duration=duration,
                    storage_type=writer.name,
                    storage_path=str(writer.storage_path),
                    storage_key=key,
                    recording_id=uid,
                )
                sup = SupervisionSegment(
                    id=uid, recording_id=uid, start=0.0, duration=duration, language=lang
                )
                cuts.append(
                    MonoCut(f"{uid}-0", 0.0, duration, 0, features=features, supervisions=[sup])
                )
                if i < 12:
                    rows.append((uid, scene))
        paths[lang] = root / f"cuts_{lang}.jsonl.gz"
        CutSet.from_cuts(cuts).to_file(paths[lang])
    paths["scenes"] = write_scenes(root / "scenes", rows)
    return paths


def pretrain_args(data: dict[str, Path], exp_dir: Path, *extra: str) -> list[str]:
    return [
        *ssl_args(
            "bestrq",
            exp_dir,
            train_cuts=[str(data["zh"]), str(data["es"])],
            max_duration="5",
            codebook_size="128",
        ),
        # the schedule batch count starts at its end: the Zipformer's early-training layer skipping
        # and dropout would otherwise hide every pattern from a 20-step run
        *flags(
            log_interval="5",
            seed="3",
            ref_duration="0.001",
            visual_images=str(data["scenes"]),
            visual_cuts=[str(data["zh"]), str(data["es"])],
            visual_valid_cuts=str(data["zh"]),
            visual_every="1",
            visual_dim="64",
            visual_max_duration="16",
            num_epochs="3",
            max_batches_per_epoch="10",
            save_every_n="5",
        ),
        *extra,
    ]


def fixed_batch_infonce(args: list[str]) -> tuple[float, dict[str, torch.Tensor]]:
    """InfoNCE (eval mode) on the first 8 paired cuts of the zh set, with the model the
    exp dir's newest checkpoint holds (a fresh one of the run's seed when there is none)."""
    from less.ssl.trainer import SslTrainer

    trainer = SslTrainer(ssl_pretrain.config_from_args(ssl_pretrain.get_parser().parse_args(args)))
    trainer.setup()
    cuts = [c for c in trainer.paired.cuts if c.id.startswith("zh")][:NUM_SCENES]
    return trainer.validate_grounding(cuts)["visual_infonce"], trainer.model.state_dict()


@pytest.mark.slow
def test_grounded_pretraining_learns_saves_resumes_and_fine_tunes_the_encoder_only(tmp_path: Path):
    from less.model import build_model
    from less.ssl.model import ENCODER_PREFIXES
    from less.training import load_state_into

    data = synthetic_corpus(tmp_path / "data")
    straight = tmp_path / "straight"
    before, fresh = fixed_batch_infonce(pretrain_args(data, straight))
    ssl_pretrain.main(pretrain_args(data, straight))
    final = load_checkpoint(straight / "epoch-3.pt")
    assert final["train_state"]["batch_idx_train"] == 30
    after, _ = fixed_batch_infonce(pretrain_args(data, straight))
    # chance is log 8 = 2.08; seeds 3, 4, 5 reach 1.19, 1.84, 1.77 (the encoder moves under SSL too)
    assert after < before - 0.5, (before, after)

    # the grounding parameters are in the checkpoint (model and optimizer) and were trained
    grounding = [k for k in final["model"] if k.startswith("grounding.")]
    assert {k.split(".")[1] for k in grounding} == {
        "image_encoder",
        "pool",
        "logit_scale",
        "speech_norm",
        "image_norm",
    }
    assert all(not torch.equal(final["model"][k], fresh[k]) for k in grounding)
    assert len(final["optimizer"]["state"]) > 0 and final["config"]["grounding"]["every"] == 1
    log_text = next((straight / "log").glob("log-ssl-*.txt")).read_text()
    assert "visual_infonce" in log_text and "validation" in log_text and "visual_r5" in log_text
    assert "grounding training pairs: 24 of 26 cuts (8 distinct scenes)" in log_text

    # exact resume mid-epoch (paired stream included: its position is the step index)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(straight / "checkpoint-25.pt", resumed / "checkpoint-25.pt")
    ssl_pretrain.main(pretrain_args(data, resumed))
    again = load_checkpoint(resumed / "epoch-3.pt")["model"]
    assert all(torch.equal(again[k], final["model"][k]) for k in final["model"])
    # another grounding set-up cannot resume it
    with pytest.raises(ValueError, match="another grounding set-up"):
        ssl_pretrain.main(pretrain_args(data, resumed, "--visual-dim", "32", "--num-epochs", "4"))

    # fine-tuning takes the encoder only: the grounding tensors are not asked for
    student = build_model("xs", ctc_vocab_size=8, decoder_vocab_size=None, **SMALL)
    load_state_into(student, final["model"], "epoch-3.pt", prefixes=ENCODER_PREFIXES)
    own = student.state_dict()
    encoder_keys = [k for k in final["model"] if k.startswith(ENCODER_PREFIXES)]
    assert encoder_keys and all(torch.equal(own[k], final["model"][k]) for k in encoder_keys)
    assert not any(k.startswith("grounding.") for k in own)


@pytest.mark.slow
def test_paired_steps_alternate_and_can_add_the_ssl_loss_of_the_paired_audio(tmp_path: Path):
    data = synthetic_corpus(tmp_path / "data")
    exp = tmp_path / "exp"
    args = pretrain_args(
        data,
        exp,
        *flags(
            num_epochs="1",
            max_batches_per_epoch="4",
            visual_every="2",
            visual_ssl_weight="0.5",
            valid_cuts=str(data["es"]),
            log_interval="1",
        ),
    )
    ssl_pretrain.main(args)
    lines = next((exp / "log").glob("log-ssl-*.txt")).read_text().splitlines()
    steps = [line for line in lines if "(global " in line]
    assert len(steps) == 4
    for n, line in enumerate(steps, 1):  # steps 2 and 4 carry a paired batch, 1 and 3 do not
        assert ("visual_infonce" in line) == (n % 2 == 0) and ("visual_ssl_loss" in line) == (
            n % 2 == 0
        ), line
    (valid,) = [line for line in lines if "validation" in line and "visual_r1" in line]
    assert (
        "anchor_loss" in valid
    )  # SSL validation on --valid-cuts and grounding on --visual-valid-cuts


def test_grounding_flags_are_checked():
    with pytest.raises(ValueError, match="needs --visual-cuts"):
        GroundingConfig(images="scenes")
    with pytest.raises(ValueError, match="need --visual-images"):
        GroundingConfig(cuts=["a.jsonl.gz"])
    with pytest.raises(ValueError, match="--visual-stack"):
        GroundingConfig(images="scenes", cuts=["a"], stack="middle")
    args = ssl_pretrain.get_parser().parse_args(["--train-cuts", "a", "--train-weights", "2,1"])
    cfg = ssl_pretrain.config_from_args(args)
    assert cfg.train_weights == [2.0, 1.0] and not cfg.grounding.enabled
