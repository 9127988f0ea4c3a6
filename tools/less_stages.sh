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
  if [ "$3" -eq 1 ]; then echo "$data/pl/$1/iter1"; else echo "$data/pl/$1/$2/iter$3"; fi
}

less_system_dir() {  # task system iter -> directory of the system's LLM answers, kept cuts, mix
  echo "$data/pl/$1/$2/iter$3"
}

less_pseudo_label() {  # task system iter unlabeled_cuts [more pseudo_label flags]
  local teacher epochs
  read -r teacher epochs <<<"$(less_teacher "$1" "$2" "$3")"
  python -m less.bin.pseudo_label --iter "$3" --exp-dir "$teacher" --epoch "$epochs" \
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
  # llm_nbest_in_prompt llm_prompt_template num_threads
  local args=(--in-cuts "$(less_llm_in "$1" "$2")" --out-cuts "$(less_llm_out "$1" "$2")" --task "$1"
              --lang "$3" --mode correct --backend "$llm_backend" --model "$llm_model"
              --nbest-in-prompt "${llm_nbest_in_prompt:-0}")
  less_need 7 "$(less_llm_in "$1" "$2")"
  [ -n "${llm_prompt_template:-}" ] && args+=(--prompt-template "$llm_prompt_template")
  if [ "$llm_backend" = openai ]; then
    args+=(--base-url "$llm_base_url" --api-key-env "$llm_api_key_env" --max-concurrency "$llm_concurrency")
  else
    args+=(--batch-size "$llm_batch_size" --num-threads "$num_threads")
  fi
  python -m less.bin.llm_correct "${args[@]}"
}

less_filter() {  # task system iter lang: L keeps hypo_wer <= max_hypo_wer (LLM labels), N keeps all
  local dir
  dir="$(less_system_dir "$1" "$2" "$3")"
  if [ "$2" = L ]; then
    less_need 8 "$(less_llm_out "$1" "$3")"
  else
    less_need 8 "$(less_pl_dir "$1" "$2" "$3")/${unsup_part}_cuts_pl.jsonl.gz"
  fi
  if [ "$2" = L ]; then
    python -m less.bin.filter_pl --in-cuts "$(less_llm_out "$1" "$3")" --task "$1" --lang "$4" \
      --max-hypo-wer "$max_hypo_wer" --label llm \
      --annotated-cuts "$dir/${unsup_part}_cuts_filtered.jsonl.gz" --out-cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz"
  else
    python -m less.bin.filter_pl --in-cuts "$(less_pl_dir "$1" "$2" "$3")/${unsup_part}_cuts_pl.jsonl.gz" \
      --task "$1" --lang "$4" --max-hypo-wer -1 --label teacher --out-cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz"
  fi
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
  local dir teacher epochs init=()
  dir="$(less_system_dir "$1" "$2" "$3")"
  python -m less.bin.mix --sup-cuts "$4" --pl-cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz" \
    --pl-ratio "$pl_ratio" --out-cuts "$dir/train_mix_cuts.jsonl.gz"
  if [ "$student_init" = teacher ]; then
    read -r teacher epochs <<<"$(less_teacher "$1" "$2" "$3")"
    init=(--init-from "$teacher/epoch-$epochs.pt")
  elif [ "${ssl:-none}" != none ]; then
    init=(--init-encoder-from "$(less_ssl_checkpoint "$1")")
  fi
  # shellcheck disable=SC2086  # train_cmd is a command line
  ${train_cmd:-python -m less.bin.train} --task "$1" --exp-dir "$exp/$1/$2/iter$3" --train-cuts "$dir/train_mix_cuts.jsonl.gz" \
    --valid-cuts "$5" --num-epochs "$student_epochs" "${init[@]}" "${@:6}"
}

less_decode() {  # exp_dir epochs [decode flags: --method ..., --test name=cuts ...]
  python -m less.bin.decode --exp-dir "$1" --epoch "$2" --avg "$(less_avg "$2")" --beam-size "$beam_size" "${@:3}"
}

less_report() {  # exp/RESULTS.md and plots
  python -m less.bin.report --exp-dir "$exp" --pl-dir "$data/pl" --unsup-part "$unsup_part"
}
