"""Scene images of the mini corpus (less.local.mini.scenes, less.bin.render_scenes)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from less.local.mini.grammar import SentenceSampler
from less.local.mini.scenes import COUNTED, MAX_COPIES, png_bytes, render, scene_of
from tests.helpers import flags


def _sentences(count: int, seed: int = 0):
    out = []
    for domain in ("read", "conversational"):
        sampler = SentenceSampler(domain, seed)
        out += [sampler.sample() for _ in range(count)]
    return out


def _regions(image) -> int:
    from scipy import ndimage

    pixels = np.asarray(image)
    mask = np.any(pixels != pixels[0, 0], axis=-1)  # (0, 0) is always background
    return ndimage.label(mask, structure=np.ones((3, 3)))[1]


def test_the_scene_ignores_the_language_of_the_rendering():
    """The scene comes from the drawn slots: replacing every rendered string (another
    language, another spelling) changes nothing, and equal slots give equal images."""
    for sentence in _sentences(100):
        other = dataclasses.replace(
            sentence, zh="x", es="y", en="z", zh_display="x", es_display="y"
        )
        assert scene_of(other) == scene_of(sentence)
        assert png_bytes(scene_of(other)) == png_bytes(scene_of(sentence))


def test_different_slots_give_different_scenes():
    sentences = _sentences(500, seed=1)
    keys = {scene_of(s).key for s in sentences}
    texts = {s.zh for s in sentences}
    assert len(keys) > 0.9 * len(texts)


def test_regions_in_the_image_equal_what_was_drawn():
    """Every icon (each counted copy), the time band and the gauge are separate regions."""
    checked = counted = 0
    for sentence in _sentences(400, seed=2):
        scene = scene_of(sentence)
        assert _regions(render(scene)) == scene.num_regions, (sentence.en, scene)
        checked += 1
        n = dict(sentence.slots).get("n")
        if sentence.template in COUNTED and n is not None and 1 <= n <= MAX_COPIES:
            objects = [icon for icon in scene.icons if icon.kind == "object"]
            assert len(objects) == 1 and objects[0].copies == n, (sentence.en, scene)
            counted += 1
    assert checked == 800 and counted > 20


def test_colour_and_size_adjectives_are_drawn():
    for sentence in _sentences(600, seed=3):
        scene = scene_of(sentence)
        if "red" in sentence.en.split():
            assert any(icon.colour == (220, 30, 30) for icon in scene.icons), sentence.en
        if "big" in sentence.en.split():
            assert any(icon.size == "big" for icon in scene.icons), sentence.en


def test_rendering_is_deterministic_across_processes():
    sentences = _sentences(20, seed=4)
    here = hashlib.sha256(b"".join(png_bytes(scene_of(s)) for s in sentences)).hexdigest()
    code = (
        "import hashlib; from less.local.mini.grammar import SentenceSampler; "
        "from less.local.mini.scenes import png_bytes, scene_of\n"
        "out = []\n"
        "for d in ('read', 'conversational'):\n"
        "    s = SentenceSampler(d, 4); out += [s.sample() for _ in range(20)]\n"
        "print(hashlib.sha256(b''.join(png_bytes(scene_of(x)) for x in out)).hexdigest())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout.strip()
    assert other == here


def test_a_sentence_without_slots_is_refused():
    sentence = dataclasses.replace(_sentences(1)[0], slots=())
    with pytest.raises(ValueError, match="no drawn slots"):
        scene_of(sentence)


def test_render_scenes_covers_every_supervision(mini_corpus: Path, tmp_path: Path):
    from lhotse import load_manifest

    from less.bin.render_scenes import main

    out = tmp_path / "scenes"
    main(
        [
            *flags(
                data_dir=str(mini_corpus),
                tasks="asr,ast",
                splits="train_sup,test_clean",
                out_dir=str(out),
            ),
        ]
    )
    rows = [json.loads(line) for line in (out / "scenes.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in rows}
    for task in ("asr", "ast"):
        for split in ("train_sup", "test_clean"):
            sups = load_manifest(
                mini_corpus / "manifests" / f"mini-{task}_supervisions_{split}.jsonl.gz"
            )
            assert {s.id for s in sups} <= set(by_id)
    assert len(by_id) == len(rows)
    for r in rows:
        assert (out / r["image"]).is_file()
    with pytest.raises(SystemExit, match="unknown split"):
        main(["--data-dir", str(mini_corpus), "--splits", "train", "--out-dir", str(out)])


@pytest.mark.slow
def test_the_images_carry_the_scene_a_bag_of_characters_retrieves_it():
    """With text in place of audio (a bag of the Mandarin characters), the grounding's image
    encoder and InfoNCE learn to retrieve held-out sentences' images far above chance (1 / 200):
    the images carry what the sentences say. ~40 s on a busy 2-core CPU."""
    import torch
    import torch.nn as nn

    from less.ssl.grounding import ImageEncoder, info_nce, retrieval_recall

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: extra threads only contend (8x slower on a busy CPU)
    try:
        recall = _bag_of_characters_recall(torch, nn, ImageEncoder, info_nce, retrieval_recall)
    finally:
        torch.set_num_threads(threads)
    assert recall["r1"] > 0.5, recall


def _bag_of_characters_recall(
    torch, nn, ImageEncoder, info_nce, retrieval_recall
) -> dict[str, float]:
    import random

    torch.manual_seed(0)
    sentences = _sentences(900, seed=7)
    random.Random(0).shuffle(sentences)
    index = {c: i + 1 for i, c in enumerate(sorted({c for s in sentences for c in s.zh}))}
    keys = [scene_of(s).key for s in sentences]
    images = torch.tensor(np.stack([np.asarray(render(scene_of(s))) for s in sentences])).permute(
        0, 3, 1, 2
    )
    text = nn.utils.rnn.pad_sequence(
        [torch.tensor([index[c] for c in s.zh]) for s in sentences], batch_first=True
    )
    dim = 128
    text_encoder = nn.Sequential(
        nn.EmbeddingBag(len(index) + 1, dim, mode="mean", padding_idx=0), nn.Linear(dim, dim)
    )
    image_encoder = ImageEncoder(dim)
    norms = nn.BatchNorm1d(dim, affine=False), nn.BatchNorm1d(dim, affine=False)
    optimizer = torch.optim.Adam([*text_encoder.parameters(), *image_encoder.parameters()], 1e-3)
    generator = torch.Generator().manual_seed(0)
    train, test = 1600, list(range(1600, 1800))
    for _ in range(300):
        batch = torch.randperm(train, generator=generator)[:64]
        loss = info_nce(
            norms[0](text_encoder(text[batch])),
            norms[1](image_encoder(images[batch])),
            [keys[i] for i in batch],
            10.0,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for module in (text_encoder, image_encoder, *norms):
        module.eval()
    with torch.no_grad():
        return retrieval_recall(
            norms[0](text_encoder(text[test])),
            norms[1](image_encoder(images[test])),
            [keys[i] for i in test],
        )
