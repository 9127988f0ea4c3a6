"""Small builders the tests share: command-line flags, a narrow Zipformer, the mini corpus's LM."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"  # files the tests read (real recorded speech)

# A narrow Zipformer (the same six stacks) so that tests train in seconds.
SMALL_ZIPFORMER = {
    "encoder_dim": [48, 64, 64, 64, 64, 64],
    "encoder_unmasked_dim": [48] * 6,
    "feedforward_dim": [96, 128, 128, 128, 128, 128],
    "num_heads": [2] * 6,
    "subsampling_channels": [4, 8, 16],
}

# One-layer stacks and decoder: the tiny model of the training and recipe tests.
TINY_MODEL = json.dumps({"num_encoder_layers": [1, 1, 1, 1, 1, 1], "decoder_num_layers": 1})


def flags(**options) -> list[str]:
    """Command-line arguments from keyword arguments: ``out_dir=p`` -> ``["--out-dir", str(p)]``.

    None leaves the flag out; a list or tuple repeats it once per value.
    """
    argv: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None:
                argv += [flag, str(item)]
    return argv


def run_script(script: Path, *args, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a recipe's shell script as a user does (a subprocess); arguments become strings."""
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def assert_help_lists(script: Path, options, defaults: dict[str, str] | None = None) -> None:
    """``script`` parses (bash -n), ``--help`` succeeds and names every one of ``options``;
    ``defaults``: option -> regex of the default its help line shows (e.g. ``r"\\[medium\\]"``)."""
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = run_script(script, "--help")
    assert result.returncode == 0, result.stderr
    for option in options:
        assert option in result.stdout, option
    for option, default in (defaults or {}).items():
        assert re.search(rf"{option}\s.*{default}", result.stdout), (option, default)


def recipe_supervisions(data: Path, corpus: str, split: str) -> dict:
    """A real recipe's supervisions of ``corpus`` and ``split`` (stage 1's manifests) by id."""
    from lhotse import load_manifest

    path = data / "manifests" / f"{corpus}_supervisions_{split}.jsonl.gz"
    return {s.id: s for s in load_manifest(path)}


def recipe_cuts(data: Path, name: str) -> list:
    """A real recipe's cuts with features (stage 2-3's ``data/fbank/<name>.jsonl.gz``)."""
    from lhotse import CutSet

    return list(CutSet.from_file(data / "fbank" / f"{name}.jsonl.gz"))


def train_mini_lm(mini_data: Path, out: Path, order: int = 2, extra_tokens: bool = True) -> Path:
    """A character n-gram LM (ARPA) of the mini corpus's Mandarin text-only corpus, at ``out``.

    ``extra_tokens``: the CTC vocabulary joins the LM's (tokens the text never shows get a
    unigram probability).
    """
    from less.bin import train_ngram

    tokens = mini_data / "lang_char" / "tokens.txt" if extra_tokens else None
    text = mini_data / "text" / "mini-asr_text_only.zh.txt"
    train_ngram.main(flags(lang="zh", order=order, text=text, extra_tokens=tokens, out=out))
    return out


# Options that make a real recipe's training tiny: one-layer stacks, one epoch per model, one
# thread, no data-loader workers (stages 4-10 run in a minute or two).
TINY_RECIPE_TRAINING = flags(
    model="xs",
    model_overrides=TINY_MODEL,
    seed_epochs=1,
    student_epochs=1,
    max_duration=20,
    dtype="fp32",
    train_workers=0,
    num_threads=1,
    train_opts="--warmup-batches 5 --num-buckets 2",
)


def assert_stages_are_guarded_blocks(run_sh: Path) -> None:
    """Stages 0-3 (the corpus's own) are guarded blocks of ``run_sh``; 4-10 are those of the
    shared ``less_loop`` of tools/less_stages.sh, which the recipe calls."""
    text = run_sh.read_text()
    shared = (ROOT / "tools" / "less_stages.sh").read_text()
    loop = shared[shared.index("less_loop() {") :]
    for number in range(11):
        guard = f'[ "$stage" -le {number} ] && [ "$stop_stage" -ge {number} ]'
        assert guard in (text if number < 4 else loop), f"no guarded block for stage {number}"
    assert "tools/less_stages.sh" in text and "\nless_loop " in text
    stages = "less_pseudo_label less_llm_correct less_filter less_train_student less_decode"
    for function in (*stages.split(), "less_report"):
        assert function in loop, function


def assert_results_rows(results_md: Path, *rows: str) -> None:
    """Each of ``rows`` (the start of a table row) is in the RESULTS.md file ``results_md``."""
    results = results_md.read_text()
    for row in rows:
        assert row in results, f"{row!r} not in {results_md}"


def python_module(module: str, *args, **options) -> list[str]:
    """The command line ``python -m module args... --option value...`` (options: :func:`flags`)."""
    return [sys.executable, "-m", module, *map(str, args), *flags(**options)]


def train_args(data: Path, exp_dir: Path, *extra: str, task: str = "asr") -> list[str]:
    """less.bin.train's arguments: the tiny model on the mini corpus in ``data``, then ``extra``."""
    if task == "asr":
        lang = ["--lang-dir", str(data / "lang_char")]
    else:
        lang = [
            *flags(
                lang_dir=str(data / "lang_bpe_128_es"),
                decoder_lang_dir=str(data / "lang_bpe_96_en"),
            ),
        ]
    return [
        *flags(task=task, exp_dir=str(exp_dir)),
        *lang,
        *flags(
            train_cuts=str(data / "fbank" / f"mini-{task}_cuts_train_sup.jsonl.gz"),
            valid_cuts=str(data / "fbank" / f"mini-{task}_cuts_dev.jsonl.gz"),
            model="xs",
            model_overrides=TINY_MODEL,
            max_duration="20",
            num_workers="0",
            log_interval="1",
            average_period="2",
            warmup_batches="5",
            seed="7",
        ),
        *extra,
    ]


def ssl_args(method: str, exp_dir: Path, **options) -> list[str]:
    """less.bin.ssl_pretrain's arguments: ``method`` on the small Zipformer in ``exp_dir``, two
    buckets, no loader workers, then ``options`` (:func:`flags`; they replace those defaults)."""
    defaults = dict(
        model="xs",
        model_overrides=json.dumps(SMALL_ZIPFORMER),
        num_buckets="2",
        num_workers="0",
    )
    return flags(method=method, exp_dir=str(exp_dir), **{**defaults, **options})


def same_weights(a: dict, b: dict) -> bool:
    """Two state dicts with the same keys and exactly equal tensors."""
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# A toy Mandarin grammar: the text LM and the corrector tests train on its sentences.
SUBJECTS = ["我", "你", "他", "我们", "老师", "学生", "妈妈", "小明"]
VERBS = ["喜欢", "想要", "看见", "买了", "吃了", "需要"]
OBJECTS = ["苹果", "电脑", "这本书", "音乐", "一杯咖啡", "火车票"]
TIMES = ["今天", "昨天", "明天", "现在"]


def grammar_sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(TIMES) + rng.choice(SUBJECTS) + rng.choice(VERBS) + rng.choice(OBJECTS)
        for _ in range(count)
    ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(module: str, *args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run -m <module> <args>``: ``nproc`` CPU ranks (gloo) on
    127.0.0.1, one thread each."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *flags(nproc_per_node=str(nproc), master_addr="127.0.0.1", master_port=str(free_port())),
        "-m",
        module,
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
