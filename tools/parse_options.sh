# Kaldi-style option parsing for recipe scripts. Source it after defining defaults:
#
#   stage=0          # first stage to run
#   stop_stage=100   # last stage to run
#   . "$LESS_ROOT/tools/parse_options.sh"
#
# Every variable assigned at the start of a line before this file is sourced becomes an
# option: `--stop-stage 3` sets stop_stage=3 (dashes become underscores). The comment at
# the end of the assignment is the option's help text. Rules:
#   --help / -h          print the options with their current values and exit 0
#   --name value         set a known variable; `--name=value` works too
#   an unknown --name    error naming the option, exit 1
#   a boolean option     (default true/false) only accepts true or false
# Positional arguments left after the options stay in "$@".
#
# Written for this project; it follows the behaviour Kaldi users know from utils/parse_options.sh.

__po_script="${BASH_SOURCE[1]:-$0}"
# A script that changed directory before sourcing us (run.sh does `cd "$(dirname "$0")"`)
# named itself relative to where it was started.
if [ ! -r "$__po_script" ] && [ -n "${OLDPWD:-}" ] && [ -r "$OLDPWD/$__po_script" ]; then
  __po_script="$OLDPWD/$__po_script"
fi

__po_print_help() {
  local line name value comment
  echo "Usage: $(basename "$__po_script") [options]"
  if [ -n "${help_message:-}" ]; then
    echo "$help_message"
  fi
  echo
  echo "Options (current value in brackets):"
  while IFS= read -r line; do
    case "$line" in
      *parse_options.sh*) break ;;
    esac
    if [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]]; then
      name="${BASH_REMATCH[1]}"
      comment=""
      if [[ "$line" =~ [[:space:]]\#[[:space:]]?(.*)$ ]]; then
        comment="${BASH_REMATCH[1]}"
      fi
      value="${!name-}"
      printf '  --%-24s %s [%s]\n' "${name//_/-}" "$comment" "$value"
    fi
  done <"$__po_script"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      __po_print_help
      exit 0
      ;;
    --*=*)
      __po_name="${1%%=*}"
      __po_value="${1#*=}"
      shift
      set -- "$__po_name" "$__po_value" "$@"
      continue
      ;;
    --*)
      __po_name="${1#--}"
      __po_name="${__po_name//-/_}"
      if ! [[ "$__po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__po_name+set}" ]; then
        echo "$(basename "$__po_script"): unknown option $1 (see --help)" >&2
        exit 1
      fi
      if [ $# -lt 2 ]; then
        echo "$(basename "$__po_script"): option $1 needs a value" >&2
        exit 1
      fi
      __po_old="${!__po_name}"
      if [ "$__po_old" = true ] || [ "$__po_old" = false ]; then
        if [ "$2" != true ] && [ "$2" != false ]; then
          echo "$(basename "$__po_script"): option $1 is boolean; expected true or false, got '$2'" >&2
          exit 1
        fi
      fi
      printf -v "$__po_name" '%s' "$2"
      shift 2
      ;;
    *)
      break
      ;;
  esac
done

unset __po_name __po_value __po_old
true
