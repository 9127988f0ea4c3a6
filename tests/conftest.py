"""Shared fixtures: the tiny mini corpus, built once per test session, and its stages 1-3."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import flags

SEED = 42
TASKS = ("asr", "ast")


def pytest_configure(config) -> None:
    """Each pytest-xdist worker computes with one thread: the workers already share the cores
    (with two threads each, a worker waited on the other's spinning threads: a 9-s test took
    175 s on a busy machine). Tests that want more threads set them themselves."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture()
def one_thread():
    """Torch on one thread for the test (toy models are faster so, and far faster on a busy
    machine); used by ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def module_dir(request, tmp_path_factory) -> Iterator[Path]:
    """A directory for one test module's shared fixtures, removed when the module is done.

    Trained models and recipe runs take hundreds of MB, and pytest's retention policy only
    frees per-test directories; a module with a failed test keeps its directory to inspect.
    """
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    """``data/`` of the mini recipe after stage 0 (tiny profile, both tasks)."""
    from less.local.mini.prepare import prepare

    out_dir = tmp_path_factory.mktemp("mini") / "data"
    prepare(out_dir, profile="tiny", seed=SEED, tasks=TASKS, num_jobs=1)
    return out_dir


@pytest.fixture(scope="session")
def mini_data(mini_corpus: Path) -> Path:
    """``data/`` after stages 1-3: VAD segments, fbank for every split, lang dirs."""
    from less.bin import compute_fbank, prepare_lang, vad_segment

    data = mini_corpus
    man = data / "manifests"
    for task, lang in (("asr", "zh"), ("ast", "es")):
        vad_segment.main(
            [
                *flags(
                    recordings=str(man / f"mini-{task}_recordings_unsup_wild.jsonl.gz"),
                    supervisions=str(man / f"mini-{task}_supervisions_unsup_wild.jsonl.gz"),
                    language=lang,
                    out_cuts=str(man / f"mini-{task}_cuts_unsup_wild.jsonl.gz"),
                ),
            ]
        )
        for split in ("train_sup", "dev", "test_clean", "test_wild"):
            compute_fbank.main(
                [
                    *flags(
                        recordings=str(man / f"mini-{task}_recordings_{split}.jsonl.gz"),
                        supervisions=str(man / f"mini-{task}_supervisions_{split}.jsonl.gz"),
                        require_text="true",
                        out_cuts=str(data / "fbank" / f"mini-{task}_cuts_{split}.jsonl.gz"),
                    ),
                ]
            )
        compute_fbank.main(
            [
                *flags(
                    in_cuts=str(man / f"mini-{task}_cuts_unsup_wild.jsonl.gz"),
                    out_cuts=str(data / "fbank" / f"mini-{task}_cuts_unsup_wild.jsonl.gz"),
                ),
            ]
        )
    sups = str(man / "mini-asr_supervisions_train_sup.jsonl.gz")
    prepare_lang.main(
        [
            *flags(
                type="char",
                lang="zh",
                out_dir=str(data / "lang_char"),
                manifest=sups,
                extra_text=str(data / "text" / "mini-asr_text_only.zh.txt"),
            ),
        ]
    )
    sups = str(man / "mini-ast_supervisions_train_sup.jsonl.gz")
    # different sizes, so tests can tell the CTC (Spanish) and decoder (English) vocabularies apart
    for lang, field, size in (("es", "text", 128), ("en", "translation", 96)):
        prepare_lang.main(
            [
                *flags(
                    type="bpe",
                    lang=lang,
                    vocab_size=str(size),
                    field=field,
                    out_dir=str(data / f"lang_bpe_{size}_{lang}"),
                    manifest=sups,
                    extra_text=str(data / "text" / f"mini-ast_text_only.{lang}.txt"),
                ),
            ]
        )
    return data


@pytest.fixture(scope="session")
def _seed_models(mini_data: Path, tmp_path_factory) -> dict[str, Path]:
    """One-epoch tiny seed models of both tasks (tests.helpers.train_args), trained once."""
    import torch

    from less.bin import train as train_cli
    from tests.helpers import train_args

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("seed_models")
    for task in TASKS:
        train_cli.main(train_args(mini_data, root / task, "--num-epochs", "1", task=task))
    return {task: root / task for task in TASKS}


@pytest.fixture
def seed_model(_seed_models: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """``seed_model("asr")``: an exp dir of this test's own holding the session's one-epoch
    model of that task as ``epoch-1.pt`` (what ``train_args(..., "--num-epochs", "1")``
    writes), so decoding and export write their results beside it without touching others'."""

    def copy(task: str) -> Path:
        exp = tmp_path / f"{task}_seed"
        exp.mkdir()
        shutil.copy2(_seed_models[task] / "epoch-1.pt", exp / "epoch-1.pt")
        return exp

    return copy
