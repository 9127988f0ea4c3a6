"""Dequantise a GGUF file once, keep it as a plain transformers directory, load that next time.

transformers reads GGUF by parsing the whole metadata block (a 262k-token vocabulary
for Gemma 3), rebuilding a fast tokenizer from it and dequantising every tensor with
numpy: 52 s for Gemma 3 270M on this project's CPU (15 s tokenizer, 37 s model), and
again in every run and every shard. The result is an ordinary fp32 model, so we save
it with ``save_pretrained`` (safetensors, memory-mapped on load) plus the converted
tokenizer, and later runs load that directory in about 4 s with bit-identical weights
(and therefore identical answers).

The copy lives in ``<cache root>/<gguf stem>-<key>/`` where ``key`` hashes the GGUF
file's absolute path, size and modification time and the transformers version: a
replaced GGUF file or a new transformers (whose conversion might differ) gets a new
copy instead of a stale one. It is written to a temporary directory and renamed into
place, so a killed conversion leaves nothing that looks finished, and shards that
convert at the same time each rename a complete copy (the loser's is discarded).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

FINISHED = "less_gguf_source.json"  # written last into the copy: its presence means complete


def cache_key(gguf_path: Path) -> str:
    """What identifies one conversion: the file (path, size, mtime) and the converter's version."""
    import transformers

    stat = gguf_path.stat()
    identity = [str(gguf_path.resolve()), stat.st_size, stat.st_mtime_ns, transformers.__version__]
    return hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()[:16]


def dequantised_dir(gguf_path: Path, cache_root: Path) -> Path:
    return cache_root / f"{gguf_path.stem}-{cache_key(gguf_path)}"


def convert_gguf(gguf_path: Path, out_dir: Path, trust_remote_code: bool = False) -> None:
    """Load ``gguf_path`` with transformers (fp32) and save model + tokenizer to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name, "trust_remote_code": trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), dtype=torch.float32, **kwargs
    )
    # The weights are already dequantised; only the GGUF "quantizer" marker refuses to save.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def ensure_dequantised(
    gguf_path: Path,
    cache_root: Path,
    convert: Callable[[Path, Path], None] = convert_gguf,
) -> tuple[Path, bool]:
    """The directory holding the dequantised copy of ``gguf_path``, and whether it was made now."""
    target = dequantised_dir(gguf_path, cache_root)
    if (target / FINISHED).is_file():
        return target, False
    cache_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_root))
    try:
        start = time.perf_counter()
        logger.info("dequantising %s once into %s (later runs load the copy)", gguf_path, target)
        convert(gguf_path, work)
        stat = gguf_path.stat()
        (work / FINISHED).write_text(
            json.dumps(
                {
                    "gguf": str(gguf_path.resolve()),
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "seconds": round(time.perf_counter() - start, 1),
                }
            ),
            encoding="utf-8",
        )
        try:
            os.rename(work, target)
        except OSError:  # another process renamed a complete copy first
            if not (target / FINISHED).is_file():
                raise
            logger.info("%s was made by another process meanwhile; using it", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target, True
