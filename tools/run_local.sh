#!/usr/bin/env bash
# Run an array of jobs on this machine, Kaldi's run.pl calling convention:
#
#   tools/run_local.sh [--max-jobs N] JOB=FIRST:LAST LOG COMMAND...
#
# Every "JOB" in LOG and in the words of COMMAND becomes the job's number (FIRST..LAST);
# at most N jobs run at once (default: all). Each job's stdout and stderr go to its LOG
# file, which starts with the command and ends with its exit status and run time. Exits 0
# when every job succeeded, else 1, naming the failed jobs and their logs. Without a
# JOB=... range, COMMAND runs once into LOG.
#
# The recipes take a launcher as --cmd (Kaldi's $train_cmd/$decode_cmd): this one, or
# tools/run_slurm.sh for a Slurm cluster.
set -uo pipefail

max_jobs=0
while [ $# -gt 0 ]; do
  case "$1" in
    --max-jobs) max_jobs=$2; shift 2 ;;
    --max-jobs=*) max_jobs=${1#*=}; shift ;;
    --*) echo "run_local.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
# shellcheck source=job_array.sh
. "$(dirname "${BASH_SOURCE[0]}")/job_array.sh"
less_job_array run_local.sh "run_local.sh [--max-jobs N] [JOB=FIRST:LAST] LOG COMMAND..." "" "$@"
var=$job_var first=$job_first last=$job_last log_pattern=$job_log

substitute() {  # job word -> word with the job variable replaced by the job number
  if [ -n "$var" ]; then echo "${2//$var/$1}"; else echo "$2"; fi
}

run_job() {  # job
  local job=$1 log word args=() start rc
  log=$(substitute "$job" "$log_pattern")
  for word in "${commands[@]}"; do args+=("$(substitute "$job" "$word")"); done
  mkdir -p "$(dirname "$log")"
  start=$(date +%s)
  {
    echo "# $(printf '%q ' "${args[@]}")"
    echo "# started $(date '+%Y-%m-%d %H:%M:%S') on $(hostname)"
  } >"$log"
  "${args[@]}" >>"$log" 2>&1
  rc=$?
  echo "# ended $(date '+%Y-%m-%d %H:%M:%S'): exit status $rc, $(( $(date +%s) - start )) s" >>"$log"
  return "$rc"
}

commands=("${job_command[@]}")
status_dir=$(mktemp -d)
trap 'rm -rf "$status_dir"' EXIT
failed=()
for (( job = first; job <= last; job++ )); do
  if [ "$max_jobs" -gt 0 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$max_jobs" ]; do wait -n || true; done
  fi
  # each job leaves its exit status in a file (wait -n above may already have reaped it)
  { run_job "$job"; echo $? >"$status_dir/$job"; } &
done
wait
for (( job = first; job <= last; job++ )); do
  [ "$(cat "$status_dir/$job" 2>/dev/null)" = 0 ] || failed+=("$job")
done
if [ "${#failed[@]}" -gt 0 ]; then
  for job in "${failed[@]}"; do
    echo "run_local.sh: job $job failed; see $(substitute "$job" "$log_pattern")" >&2
  done
  echo "run_local.sh: ${#failed[@]} of $(( last - first + 1 )) jobs failed" >&2
  exit 1
fi
exit 0
