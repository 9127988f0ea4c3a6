# shellcheck shell=bash
# The calling convention of tools/run_local.sh and tools/run_slurm.sh (Kaldi's run.pl and
# slurm.pl), after the launcher's own options: [VAR=FIRST:LAST] LOG COMMAND...
#
#   less_job_array LAUNCHER USAGE DEFAULT_VAR ARGS...
#
# Sets job_var (DEFAULT_VAR without a range), job_first, job_last (1 and 1 without), job_log
# and the array job_command; a misuse exits 2 with a message naming LAUNCHER.
# shellcheck disable=SC2034  # job_* are read by the launcher that sources this
less_job_array() {
  local launcher=$1 usage=$2
  job_var=$3 job_first=1 job_last=1
  shift 3
  if [ $# -lt 2 ]; then
    echo "usage: $usage" >&2
    exit 2
  fi
  if [[ "$1" =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+):([0-9]+)$ ]]; then
    job_var=${BASH_REMATCH[1]} job_first=${BASH_REMATCH[2]} job_last=${BASH_REMATCH[3]}
    shift
    if [ "$job_last" -lt "$job_first" ]; then
      echo "$launcher: empty job range $job_var=$job_first:$job_last" >&2
      exit 2
    fi
  fi
  job_log=$1
  shift
  [ $# -gt 0 ] || { echo "$launcher: no command" >&2; exit 2; }
  job_command=("$@")
}
