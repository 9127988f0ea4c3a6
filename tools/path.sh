# shellcheck shell=bash
# Sourced by every recipe's run.sh: finds the repository, activates its virtual
# environment (made by tools/install.sh) unless one is already active, and checks that
# the `less` package imports. Set LESS_VENV to use another environment.
LESS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LESS_ROOT
if [ -z "${VIRTUAL_ENV:-}" ]; then
  __venv="${LESS_VENV:-$LESS_ROOT/.venv}"
  if [ -f "$__venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "$__venv/bin/activate"
  fi
  unset __venv
fi
if ! __import_error="$(python3 -c "import less" 2>&1)"; then
  echo "The 'less' package is not importable. Run $LESS_ROOT/tools/install.sh first" \
       "(or activate the environment you installed it in). Python said:" >&2
  echo "$__import_error" | tail -n 5 >&2
  exit 1
fi
unset __import_error
export PYTHONUNBUFFERED=1
