"""The core installs without the optional dependencies: every module of the package imports
with the extras' packages hidden, and the extras in pyproject.toml are those packages."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

# import name of each distribution of the extras llm, vad, mini, plot, wfst
IMPORT_NAMES = {
    "transformers": "transformers",
    "accelerate": "accelerate",
    "gguf": "gguf",
    "silero-vad": "silero_vad",
    "espeakng-loader": "espeakng_loader",
    "pyroomacoustics": "pyroomacoustics",
    "pillow": "PIL",
    "matplotlib": "matplotlib",
    "kaldilm": "kaldilm",
    "kaldifst": "kaldifst",
    "kaldi-decoder": "kaldi_decoder",
}
CHECK = """
import importlib, pkgutil, sys
BLOCK = set(sys.argv[1].split(","))
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ImportError(f"optional package {name} hidden")
sys.meta_path.insert(0, Blocker())
import less
failed = []
for module in pkgutil.walk_packages(less.__path__, "less."):
    try:
        importlib.import_module(module.name)
    except Exception as err:
        failed.append(f"{module.name}: {err}")
print("\\n".join(failed))
"""


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return requirement.split(">")[0].split("=")[0].split("[")[0].strip().lower()


def test_every_module_imports_without_the_optional_packages():
    result = subprocess.run(
        [sys.executable, "-c", CHECK, ",".join(IMPORT_NAMES.values())],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "", (
        "modules importing an optional package at the top:\n" + result.stdout
    )


def test_the_extras_hold_the_hidden_packages_and_the_core_none_of_them():
    extras = _project()["optional-dependencies"]
    optional = {_name(r) for extra in ("llm", "vad", "mini", "plot", "wfst") for r in extras[extra]}
    assert optional == set(IMPORT_NAMES)
    core = {_name(r) for r in _project()["dependencies"]}
    assert not core & optional
    assert extras["recipes"] == ["less[llm,vad,mini,plot,wfst]"]
    assert any("recipes" in r for r in extras["dev"])
