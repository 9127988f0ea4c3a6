#!/usr/bin/env bash
# Run an array of jobs on a Slurm cluster, with the calling convention of Kaldi's slurm.pl
# and of tools/run_local.sh:
#
#   tools/run_slurm.sh [--time 4:00:00] [--mem 16G] [--cpus 4] [--gpus 1] [--partition P]
#                      [--max-jobs N] [--sbatch-opts "..."] JOB=FIRST:LAST LOG COMMAND...
#
# Submits one job array (sbatch --array=FIRST-LAST[%N] --wait) whose task i runs COMMAND
# with every "JOB" replaced by i, in this directory and with this environment (sbatch's
# default --export=ALL), output into LOG (JOB replaced too); the batch script and Slurm's
# own output go to <dir of LOG>/q/. Waits for the array; exits 0 when every task
# succeeded, else 1, naming the failed tasks and their logs.
set -uo pipefail

time_limit="" mem="" cpus="" gpus="" partition="" max_jobs=0 sbatch_opts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_limit=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --max-jobs) max_jobs=$2; shift 2 ;;
    --sbatch-opts) sbatch_opts=$2; shift 2 ;;
    --*) echo "run_slurm.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
# shellcheck source=job_array.sh
. "$(dirname "${BASH_SOURCE[0]}")/job_array.sh"
less_job_array run_slurm.sh "run_slurm.sh [options] [JOB=FIRST:LAST] LOG COMMAND..." JOB "$@"
var=$job_var first=$job_first last=$job_last log_pattern=$job_log
command -v sbatch >/dev/null || { echo "run_slurm.sh: sbatch not found (not on a Slurm cluster?)" >&2; exit 2; }

log_dir=$(dirname "$log_pattern")
name=$(basename "$log_pattern"); name=${name//$var/all}; name=${name%.log}
mkdir -p "$log_dir/q"
script="$log_dir/q/$name.sh"
{
  echo "#!/usr/bin/env bash"
  echo "# written by tools/run_slurm.sh; task i runs the command with $var = i"
  echo "cd $(printf '%q' "$PWD")"
  echo "job=\${SLURM_ARRAY_TASK_ID:?not a Slurm array task}"
  echo "args=($(printf '%q ' "${job_command[@]}"))"
  echo "args=(\"\${args[@]//$var/\$job}\")"
  echo "log=$(printf '%q' "$log_pattern")"
  echo "log=\${log//$var/\$job}"
  echo "mkdir -p \"\$(dirname \"\$log\")\""
  echo "start=\$(date +%s)"
  echo "{ echo \"# \$(printf '%q ' \"\${args[@]}\")\"; echo \"# started \$(date '+%Y-%m-%d %H:%M:%S') on \$(hostname), Slurm job \${SLURM_ARRAY_JOB_ID:-?}_\$job\"; } >\"\$log\""
  echo "\"\${args[@]}\" >>\"\$log\" 2>&1"
  echo "rc=\$?"
  echo "echo \"# ended \$(date '+%Y-%m-%d %H:%M:%S'): exit status \$rc, \$(( \$(date +%s) - start )) s\" >>\"\$log\""
  echo "exit \$rc"
} >"$script"
chmod +x "$script"

array="$first-$last"
[ "$max_jobs" -gt 0 ] && array="$array%$max_jobs"
opts=(--parsable --wait "--array=$array" "--job-name=$name" "--output=$log_dir/q/$name-%a.out")
[ -n "$time_limit" ] && opts+=("--time=$time_limit")
[ -n "$mem" ] && opts+=("--mem=$mem")
[ -n "$cpus" ] && opts+=("--cpus-per-task=$cpus")
[ -n "$gpus" ] && opts+=("--gres=gpu:$gpus")
[ -n "$partition" ] && opts+=("--partition=$partition")
# shellcheck disable=SC2206  # user-given sbatch flags
[ -n "$sbatch_opts" ] && opts+=($sbatch_opts)
sbatch "${opts[@]}" "$script"
rc=$?
failed=()
for (( job = first; job <= last; job++ )); do
  log=${log_pattern//$var/$job}
  tail -n 1 "$log" 2>/dev/null | grep -q "exit status 0," || failed+=("$job")
done
if [ "$rc" -ne 0 ] || [ "${#failed[@]}" -gt 0 ]; then
  for job in "${failed[@]}"; do
    echo "run_slurm.sh: task $job failed; see ${log_pattern//$var/$job} and $log_dir/q/$name-$job.out" >&2
  done
  echo "run_slurm.sh: ${#failed[@]} of $(( last - first + 1 )) tasks failed (sbatch exit status $rc)" >&2
  exit 1
fi
exit 0
