# shellcheck shell=bash
# Kaldi-style option parsing for recipe scripts. Source it after defining defaults:
#
#   stage=0          # first stage to run
#   stop_stage=100   # last stage to run
#   . "$LESS_ROOT/tools/parse_options.sh"
#
# Every variable assigned at the start of a line before this file is sourced becomes an
# option: `--stop-stage 3` sets stop_stage=3 (dashes become underscores). The comment at
# the end of the assignment is the option's help text. Nothing else is an option: not a
# variable of the environment (`--PATH /x` is refused), not one assigned in an indented
# block or after the `. parse_options.sh` line. (A caller whose file cannot be read, e.g.
# a script piped into bash, gets as options its variables that are set, not exported and
# have a lower-case letter in their name.)
# Options several scripts share can live in a file of their own whose name ends in
# _options.sh (tools/less_options.sh holds those of the LESS recipes). A line of the script
# before the `. parse_options.sh` line that sources one (`. ../../../tools/less_options.sh`
# at the start of the line; a relative path is taken from the current directory, $NAME and
# ${NAME} are expanded) makes that file's assignments at the start of a line options too,
# listed by --help in its place.
# Rules:
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

# The options: names and help comments of the assignments at the start of a line of the
# calling script, up to the line that sources this file, and of the *_options.sh files it
# sources before that line.
__po_names=()
__po_comments=()
__po_readable=false
__po_scan() {  # file: add its options; stop at a line that sources this file
  local line comment path rest name
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ "$line" =~ ^[[:space:]]*(\.|source)[[:space:]].*parse_options\.sh ]]; then
      return 1
    fi
    if [[ "$line" =~ ^(\.|source)[[:space:]]+[\"\']?([^\"\'[:space:]]*_options\.sh)[\"\']?([[:space:]]|$) ]]; then
      rest="${BASH_REMATCH[2]}"
      path=""
      while [[ "$rest" =~ ^([^$]*)\$(\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))(.*)$ ]]; do
        name="${BASH_REMATCH[3]}${BASH_REMATCH[4]}"
        path+="${BASH_REMATCH[1]}${!name-}"
        rest="${BASH_REMATCH[5]}"
      done
      path+="$rest"
      if [ -r "$path" ]; then
        __po_scan "$path" || return 1
      fi
      continue
    fi
    if [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]]; then
      __po_names+=("${BASH_REMATCH[1]}")
      comment=""
      if [[ "$line" =~ [[:space:]]\#[[:space:]]?(.*)$ ]]; then
        comment="${BASH_REMATCH[1]}"
      fi
      __po_comments+=("$comment")
    fi
  done <"$1"
  return 0
}
if [ -r "$__po_script" ]; then
  __po_readable=true
  __po_scan "$__po_script" || true
fi

__po_is_option() {
  local name
  if [ "$__po_readable" = true ]; then
    for name in "${__po_names[@]}"; do
      [ "$name" = "$1" ] && return 0
    done
    return 1
  fi
  # No script to read: a variable the caller set and did not export (the environment's are
  # exported), with a lower-case letter in its name (not one of bash's own: IFS, PS4, HOSTNAME...).
  [[ "$1" =~ [a-z] ]] && [ -n "${!1+set}" ] || return 1
  [[ "$(declare -p "$1" 2>/dev/null)" =~ ^declare\ -[a-zA-Z-]*x ]] && return 1
  return 0
}

__po_print_help() {
  local i name
  echo "Usage: $(basename "$__po_script") [options]"
  if [ -n "${help_message:-}" ]; then
    echo "$help_message"
  fi
  echo
  echo "Options (current value in brackets):"
  for i in "${!__po_names[@]}"; do
    name="${__po_names[$i]}"
    printf '  --%-24s %s [%s]\n' "${name//_/-}" "${__po_comments[$i]}" "${!name-}"
  done
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
      if ! [[ "$__po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ! __po_is_option "$__po_name"; then
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

unset __po_name __po_value __po_old __po_names __po_comments __po_readable
unset -f __po_scan __po_is_option __po_print_help
# Recipes pass option values on as words (e.g. --train-opts "--noise-snr=0,20" split into
# flags): with pathname expansion off, a value such as '*' stays '*' instead of becoming the
# names of the files in the current directory. The recipes use no globs themselves.
set -f
true
