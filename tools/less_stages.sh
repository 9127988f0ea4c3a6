# Shell functions shared by the LESS recipes (egs/*/less/run.sh source this after
# parse_options.sh). Each recipe keeps its numbered stage blocks; what the stages do
# with their inputs lives here once.
#
# The functions read these recipe variables:
#   exp data             experiment and data directories
#   seed_epochs          epochs of the seed model S (exp/<task>/iter0)
#   student_epochs       epochs of every student (exp/<task>/<system>/iter<k>)
#   avg                  epochs averaged when decoding or teaching (running averaged model)
#   beam_size            beam of pseudo-labelling and decoding
#   unsup_part           name of the unlabeled part (data/pl/.../<unsup_part>_cuts_*.jsonl.gz)
#   pl_dir               where pseudo-labels, LLM answers, kept cuts and mixes go (default $data/pl)
#   max_hypo_wer         LESS filter threshold
#   pl_ratio             pseudo-labelled hours per supervised hour (0: all kept cuts)
#   student_init         scratch | teacher
#   train_cmd            how to start training (default "python -m less.bin.train"; on GPUs
#                        e.g. "torchrun --nproc-per-node 8 -m less.bin.train")
#   ssl                  none | bestrq | birq: self-supervised pretraining of the encoder on the
#                        unlabeled audio before the seed (exp/<task>/ssl_<ssl>); the seed and the
#                        scratch students start their encoder from it (default none)
#   ssl_epochs ssl_opts  its epochs, and more less.bin.ssl_pretrain flags
#
# Layout (see README.md): the teacher of system X at iteration k is exp/<task>/iter0 for
# k = 1, else exp/<task>/X/iter<k-1>. At k = 1 every system shares the teacher's outputs
# in data/pl/<task>/iter1; LLM answers, filtered cuts and mixes are per system in
# data/pl/<task>/<system>/iter<k>.

less_die() {  # message: stop the recipe with an error naming what is wrong
  echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) ERROR: $*" >&2
  exit 1
}

less_need() {  # stage file...: stop, naming the first input that an earlier stage should have made
  local stage_number=$1 path
  shift
  for path in "$@"; do
    [ -e "$path" ] || less_die "stage $stage_number needs $path, which does not exist (run the stage that makes it first)"
  done
}

less_avg() {  # epochs -> how many of them to average
  echo $(( avg < $1 ? avg : $1 ))
}

less_teacher() {  # task system iter -> "<teacher exp dir> <its epochs>"
  if [ "$3" -eq 1 ]; then
    echo "$exp/$1/iter0 $seed_epochs"
  else
    echo "$exp/$1/$2/iter$(( $3 - 1 )) $student_epochs"
  fi
}

less_pl_dir() {  # task system iter -> directory of the teacher's pseudo-labels
  local root="${pl_dir:-$data/pl}"
  if [ "$3" -eq 1 ]; then echo "$root/$1/iter1"; else echo "$root/$1/$2/iter$3"; fi
}

less_system_dir() {  # task system iter -> directory of the system's LLM answers, kept cuts, mix
  echo "${pl_dir:-$data/pl}/$1/$2/iter$3"
}

less_sharded() {  # jobs log_name command...: run the command once, or as `jobs` shards through $cmd
  # (tools/run_local.sh, tools/run_slurm.sh, or any launcher with Kaldi's run.pl convention); each
  # shard gets --num-shards jobs --shard-id i and logs to $exp/log/<log_name>.<i>.log
  local jobs=$1 name=$2
  shift 2
  if [ "$jobs" -le 1 ]; then
    "$@"
    return
  fi
  # shellcheck disable=SC2086  # cmd is a command line: the launcher and its options
  ${cmd:-$LESS_ROOT/tools/run_local.sh} "JOB=0:$(( jobs - 1 ))" "$exp/log/$name.JOB.log" "$@" \
    --num-shards "$jobs" --shard-id JOB
}

less_pseudo_label() {  # task system iter unlabeled_cuts [more pseudo_label flags]
  # with pl_jobs > 1, as that many shards through $cmd; the last shard to finish combines them
  # with whisper_teacher set (a CTranslate2 dir, a hub id such as Systran/faster-whisper-large-v3,
  # or builtin:whisper-base), iteration 1 is labelled by Whisper through faster-whisper, as in the
  # LESS paper (transcribe for asr, translate to English for ast; whisper_language: the speech's)
  local teacher epochs
  if [ -n "${whisper_teacher:-}" ] && [ "$3" -eq 1 ]; then
    less_sharded "${pl_jobs:-1}" "pseudo_label_$1_iter1" python -m less.bin.pseudo_label --iter 1 \
      --teacher faster-whisper --whisper-model "$whisper_teacher" \
      --language "${whisper_language:?set whisper_language (zh, es...) with whisper_teacher}" \
      --whisper-task "$([ "$1" = ast ] && echo translate || echo transcribe)" --in-cuts "$4" \
      --out-cuts "$(less_pl_dir "$1" "$2" "$3")/${unsup_part}_cuts_pl.jsonl.gz" "${@:5}"
    return
  fi
  read -r teacher epochs <<<"$(less_teacher "$1" "$2" "$3")"
  less_sharded "${pl_jobs:-1}" "pseudo_label_$1_$2_iter$3" python -m less.bin.pseudo_label --iter "$3" \
    --exp-dir "$teacher" --epoch "$epochs" \
    --avg "$(less_avg "$epochs")" --beam-size "$beam_size" --in-cuts "$4" \
    --out-cuts "$(less_pl_dir "$1" "$2" "$3")/${unsup_part}_cuts_pl.jsonl.gz" "${@:5}"
}

less_llm_in() {  # task iter -> the pseudo-labels system L corrects
  echo "$(less_pl_dir "$1" L "$2")/${unsup_part}_cuts_pl.jsonl.gz"
}

less_llm_out() {  # task iter -> the corrected pseudo-labels of system L
  echo "$(less_system_dir "$1" L "$2")/${unsup_part}_cuts_llm.jsonl.gz"
}

less_llm_correct() {  # task iter lang: system L's LLM correction with the recipe's llm_* options
  # reads llm_backend llm_model llm_base_url llm_api_key_env llm_concurrency llm_batch_size
  # llm_nbest_in_prompt llm_prompt_template llm_max_failed_fraction num_threads
  local args=(--in-cuts "$(less_llm_in "$1" "$2")" --out-cuts "$(less_llm_out "$1" "$2")" --task "$1"
              --lang "$3" --mode correct --backend "$llm_backend" --model "$llm_model"
              --nbest-in-prompt "${llm_nbest_in_prompt:-0}" --max-failed-fraction "${llm_max_failed_fraction:-0.02}")
  less_need 7 "$(less_llm_in "$1" "$2")"
  [ -n "${llm_prompt_template:-}" ] && args+=(--prompt-template "$llm_prompt_template")
  if [ "$llm_backend" = openai ]; then
    args+=(--base-url "$llm_base_url" --api-key-env "$llm_api_key_env" --max-concurrency "$llm_concurrency")
  else
    args+=(--batch-size "$llm_batch_size" --num-threads "$num_threads")
  fi
  python -m less.bin.llm_correct "${args[@]}"
}

less_uses_llm() {  # system: does it learn from the LLM's labels (L, and U, which is L + the rejected cuts)?
  [ "$1" = L ] || [ "$1" = U ]
}

less_filter() {  # task system iter lang: L (and U) keep hypo_wer <= max_hypo_wer (LLM labels), N keeps all
  local dir
  dir="$(less_system_dir "$1" "$2" "$3")"
  if less_uses_llm "$2"; then
    less_need 8 "$(less_llm_out "$1" "$3")"
  else
    less_need 8 "$(less_pl_dir "$1" "$2" "$3")/${unsup_part}_cuts_pl.jsonl.gz"
  fi
  if less_uses_llm "$2"; then
    python -m less.bin.filter_pl --in-cuts "$(less_llm_out "$1" "$3")" --task "$1" --lang "$4" \
      --max-hypo-wer "$max_hypo_wer" --label llm \
      --annotated-cuts "$dir/${unsup_part}_cuts_filtered.jsonl.gz" --out-cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz"
  else
    python -m less.bin.filter_pl --in-cuts "$(less_pl_dir "$1" "$2" "$3")/${unsup_part}_cuts_pl.jsonl.gz" \
      --task "$1" --lang "$4" --max-hypo-wer -1 --label teacher --out-cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz"
  fi
}

less_unsup_lm() {  # task iter lang tokens_txt text...: system U's character n-gram LM
  # trained on the text-only corpus and the LLM's text of the kept cuts (never on the rejected
  # cuts it scores), with every CTC token in its vocabulary
  local dir texts=() t
  dir="$(less_system_dir "$1" U "$2")"
  less_need 8 "$dir/${unsup_part}_cuts_kept.jsonl.gz" "$4"
  for t in "${@:5}"; do texts+=(--text "$t"); done
  python -m less.bin.train_ngram "${texts[@]}" --cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz" --lang "$3" \
    --order "${unsup_lm_order:-3}" --extra-tokens "$4" --out "$dir/ngram.arpa"
}

less_ssl_checkpoint() {  # task -> the pretrained encoder the seed and scratch students start from
  echo "$exp/$1/ssl_${ssl}/epoch-${ssl_epochs}.pt"
}

less_ssl_init() {  # task -> training flags that start the encoder from SSL pretraining (none when ssl=none)
  [ "${ssl:-none}" = none ] || echo "--init-encoder-from $(less_ssl_checkpoint "$1")"
}

less_ssl_pretrain() {  # task unlabeled_cuts [more ssl_pretrain flags: model, batch size, threads...]
  case "${ssl:-none}" in
    none) return 0 ;;
    bestrq | birq) ;;
    *) less_die "--ssl must be none, bestrq or birq, not '$ssl'" ;;
  esac
  less_need 4 "$2"
  # shellcheck disable=SC2086  # ssl_opts is a list of flags
  python -m less.bin.ssl_pretrain --method "$ssl" --train-cuts "$2" --exp-dir "$exp/$1/ssl_${ssl}" \
    --num-epochs "$ssl_epochs" "${@:3}" ${ssl_opts:-}
}

less_train_student() {  # task system iter supervised_cuts valid_cuts [more train flags: lang dirs, model...]
  # system S_cont is the control: the teacher trained as long again on the supervised cuts
  # alone (what the students' extra epochs give without any pseudo-label)
  local dir teacher epochs init=() train_cuts unsup=()
  dir="$(less_system_dir "$1" "$2" "$3")"
  if [ "$2" = S_cont ]; then
    train_cuts="$4"
  else
    less_need 9 "$dir/${unsup_part}_cuts_kept.jsonl.gz"
    python -m less.bin.mix --sup-cuts "$4" --pl-cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz" \
      --pl-ratio "$pl_ratio" --out-cuts "$dir/train_mix_cuts.jsonl.gz"
    train_cuts="$dir/train_mix_cuts.jsonl.gz"
  fi
  if [ "$2" = U ]; then
    # system U: L's student, plus the sequence-level unsupervised loss on the cuts L rejects
    [ "$1" = asr ] || less_die "system U is ASR only (its loss scores character hypotheses with an n-gram LM); drop it from --systems for $1"
    less_need 9 "$dir/${unsup_part}_cuts_filtered.jsonl.gz" "$dir/ngram.arpa"
    unsup=(--unsup-cuts "$dir/${unsup_part}_cuts_filtered.jsonl.gz" --unsup-lm "$dir/ngram.arpa")
    # shellcheck disable=SC2206  # unsup_opts holds flags
    unsup+=(${unsup_opts:-})
  fi
  if [ "$student_init" = teacher ]; then
    # the teacher as decoding and pseudo-labelling use it: the average of its last epochs
    read -r teacher epochs <<<"$(less_teacher "$1" "$2" "$3")"
    init=(--init-from "$teacher/epoch-$epochs.pt" --init-avg "$(less_avg "$epochs")")
  elif [ "${ssl:-none}" != none ]; then
    init=(--init-encoder-from "$(less_ssl_checkpoint "$1")")
  fi
  # shellcheck disable=SC2086  # train_cmd is a command line
  ${train_cmd:-python -m less.bin.train} --task "$1" --exp-dir "$exp/$1/$2/iter$3" --train-cuts "$train_cuts" \
    --valid-cuts "$5" --num-epochs "$student_epochs" "${init[@]}" "${unsup[@]}" "${@:6}"
}

less_decode() {  # exp_dir epochs [decode flags: --method ..., --test name=cuts ...]
  python -m less.bin.decode --exp-dir "$1" --epoch "$2" --avg "$(less_avg "$2")" --beam-size "$beam_size" "${@:3}"
}

less_seeds_report() {  # root_exp "seeds" "tasks" "systems": root_exp/RESULTS.md over exp/seed<s> runs
  # per task: mean ± std over the seeds, per-seed values, and paired comparisons (bootstrap
  # over utterances, sign tests) of L against N, and of the students against the control
  local root=$1 runs="" s task paired=()
  for s in $2; do runs="${runs:+$runs,}$root/seed$s"; done
  [[ " $4 " == *" L "* && " $4 " == *" N "* ]] && paired+=(--paired L,N)
  if [[ " $4 " == *" S_cont "* ]]; then
    [[ " $4 " == *" L "* ]] && paired+=(--paired L,S_cont)
    [[ " $4 " == *" N "* ]] && paired+=(--paired N,S_cont)
  fi
  : >"$root/RESULTS.md.tmp"
  for task in $3; do
    python -m less.bin.report --task "$task" --group "seeds=$runs" "${paired[@]}" --out "$root/RESULTS-$task.md"
    cat "$root/RESULTS-$task.md" >>"$root/RESULTS.md.tmp"
  done
  mv "$root/RESULTS.md.tmp" "$root/RESULTS.md"
}

less_report() {  # exp/RESULTS.md and plots
  python -m less.bin.report --exp-dir "$exp" --pl-dir "${pl_dir:-$data/pl}" --unsup-part "$unsup_part"
}

# ---------------------------------------------------------------- stage timing
# less_time_begin STAGE TASK ... less_time_end: one line per stage and task in
# $exp/timing.tsv (start, end, wall and CPU seconds of the commands it ran), read by
# tools/bench/recipe_time.py. CPU time comes from the shell's cumulative children times
# (/proc/$$/stat), so it counts every process the stage waited for.
__less_cpu_seconds() {  # user+system seconds of this shell's finished children
  local stat fields
  stat="$(cat /proc/$$/stat 2>/dev/null)" || { echo 0; return; }
  read -r -a fields <<<"${stat##*) }"  # fields after "(comm)": state is index 0
  echo "$(( fields[13] + fields[14] )) $(getconf CLK_TCK)" | awk '{printf "%.2f", $1 / $2}'
}

less_time_begin() {  # stage task
  __less_time_stage=$1 __less_time_task=$2
  __less_time_start=$(date +%s.%N)
  __less_time_cpu=$(__less_cpu_seconds)
}

less_time_end() {
  local end cpu
  end=$(date +%s.%N)
  cpu=$(__less_cpu_seconds)
  mkdir -p "$exp"
  [ -f "$exp/timing.tsv" ] || printf 'task\tstage\tstart\tend\twall_s\tcpu_s\n' >"$exp/timing.tsv"
  awk -v t="$__less_time_task" -v s="$__less_time_stage" -v a="$__less_time_start" -v b="$end" \
      -v c0="$__less_time_cpu" -v c1="$cpu" \
      'BEGIN {printf "%s\t%s\t%.3f\t%.3f\t%.1f\t%.1f\n", t, s, a, b, b - a, c1 - c0}' >>"$exp/timing.tsv"
}
