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
        other = dataclasses.replace(sentence, zh="x", es="y", en="z", zh_display="x", es_display="y")
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
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert other == here


def test_a_sentence_without_slots_is_refused():
    sentence = dataclasses.replace(_sentences(1)[0], slots=())
    with pytest.raises(ValueError, match="no drawn slots"):
        scene_of(sentence)


def test_render_scenes_covers_every_supervision(mini_corpus: Path, tmp_path: Path):
    from lhotse import load_manifest

    from less.bin.render_scenes import main

    out = tmp_path / "scenes"
    main(["--data-dir", str(mini_corpus), "--tasks", "asr,ast", "--splits", "train_sup,test_clean",
          "--out-dir", str(out)])
    rows = [json.loads(line) for line in (out / "scenes.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in rows}
    for task in ("asr", "ast"):
        for split in ("train_sup", "test_clean"):
            sups = load_manifest(mini_corpus / "manifests" / f"mini-{task}_supervisions_{split}.jsonl.gz")
            assert {s.id for s in sups} <= set(by_id)
    assert len(by_id) == len(rows)
    for r in rows:
        assert (out / r["image"]).is_file()
    with pytest.raises(SystemExit, match="unknown split"):
        main(["--data-dir", str(mini_corpus), "--splits", "train", "--out-dir", str(out)])
