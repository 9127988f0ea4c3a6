# shellcheck shell=bash disable=SC2154  # the functions read the recipe's variables (listed below)
# Shell functions shared by the LESS recipes (egs/*/less/run.sh source this after
# parse_options.sh). Each recipe keeps its numbered stage blocks; what the stages do
# with their inputs lives here once.
#
# The functions read these recipe variables (the options of them that every recipe has with
# the same default are set by tools/less_options.sh):
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
#   student_schedule     with student_init=teacher: continue (the teacher's LR/regularisation
#                        schedules go on where it stopped) | restart (warm-up and peak LR again)
#   train_cmd            how to start training (default "python -m less.bin.train"; on GPUs
#                        e.g. "torchrun --nproc-per-node 8 -m less.bin.train")
#   ssl                  none | bestrq | birq: self-supervised pretraining of the encoder on the
#                        unlabeled audio before the seed (exp/<task>/ssl_<ssl>); the seed and the
#                        scratch students start their encoder from it (default none)
#   ssl_epochs ssl_opts  its epochs, and more less.bin.ssl_pretrain flags
#   ssl_cmd              how to start pretraining (default "python -m less.bin.ssl_pretrain"; on
#                        GPUs e.g. "torchrun --nproc-per-node 8 -m less.bin.ssl_pretrain")
#   ssl_finetune_opts    more less.bin.train flags of the models that start from it, e.g.
#                        "--encoder-lr-scale 0.1 --freeze-encoder-batches 200"
#   unsup_audio_dir      your own long recordings (stages 1-2: less_vad_user_audio and
#                        less_user_audio_features)
#   min_utt_duration max_utt_duration  the VAD's shortest and longest segment (s)
#   skip_bad_audio       true: the VAD passes over unreadable files (and logs them)
#
# Layout (see README.md): the teacher of system X at iteration k is exp/<task>/iter0 for
# k = 1, else exp/<task>/X/iter<k-1>. At k = 1 every system shares the teacher's outputs
# in data/pl/<task>/iter1; LLM answers, filtered cuts and mixes are per system in
# data/pl/<task>/<system>/iter<k>.

less_die() {  # message: stop the recipe with an error naming what is wrong
  echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) ERROR: $*" >&2
  exit 1
}

# A queue of background runs, at most N at a time, each collected by its pid (`wait -n` misses a
# run that ended before it was called): start a run with `cmd & less_pids+=("$!") less_names+=(X)`,
# then `while [ "${#less_pids[@]}" -ge N ]; do less_wait_first; done`; N = 1 drains the queue.
less_pids=() less_names=()
less_wait_first() {  # wait for the oldest queued run; stop, naming it, when it failed
  wait "${less_pids[0]}" || less_die "run ${less_names[0]} failed (see its log)"
  less_pids=("${less_pids[@]:1}") less_names=("${less_names[@]:1}")
}

less_need() {  # stage file...: stop, naming the first input that an earlier stage should have made
  local stage_number=$1 path
  shift
  for path in "$@"; do
    [ -e "$path" ] || less_die "stage $stage_number needs $path, which does not exist (run the stage that makes it first)"
  done
}

less_model_task() {  # recipe task (asr, ast, asr_en: a directory name) -> the model's task (asr or ast)
  case "$1" in ast*) echo ast ;; *) echo asr ;; esac
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
  local args=(--in-cuts "$(less_llm_in "$1" "$2")" --out-cuts "$(less_llm_out "$1" "$2")" --task "$(less_model_task "$1")"
              --lang "$3" --mode correct --backend "$llm_backend" --model "$llm_model"
              --nbest-in-prompt "${llm_nbest_in_prompt:-0}" --max-failed-fraction "${llm_max_failed_fraction:-0.02}")
  [ -n "${llm_prompt_template:-}" ] && args+=(--prompt-template "$llm_prompt_template")
  if [ "$llm_backend" = openai ]; then
    args+=(--base-url "$llm_base_url" --api-key-env "$llm_api_key_env" --max-concurrency "$llm_concurrency")
  else
    args+=(--batch-size "$llm_batch_size" --num-threads "$num_threads")
  fi
  python -m less.bin.llm_correct "${args[@]}"
}

less_uses_llm() {  # system: does it learn from the LLM's labels (L, L_<threshold>, and U, which is L
  # + the rejected cuts)?
  [ "$1" = L ] || [ "$1" = U ] || [[ "$1" == L_* ]]
}

less_any_llm() {  # "systems": does any of them need stage 7 (the LLM correction)?
  local system
  for system in $1; do less_uses_llm "$system" && return 0; done
  return 1
}

less_check_systems() {  # "systems" num_iters: stop on a system name the loop does not know
  local system
  for system in $1; do
    case "$system" in
      S_cont | N | L) ;;
      U | L_*)
        [ "$system" = U ] || [[ "${system#L_}" =~ ^[0-9]*\.?[0-9]+$ ]] \
          || less_die "system $system: L_<threshold> needs a number after L_ (e.g. L_0.3), not '${system#L_}'"
        # stage 7 corrects system L's teacher's labels; from iteration 2 on each system has its own teacher
        [ "$2" -le 1 ] || less_die "system $system runs one iteration (--num-iters 1); it shares L's LLM answers"
        ;;
      *) less_die "unknown system '$system' (known: S_cont N L L_<threshold> U)" ;;
    esac
  done
}

less_threshold() {  # system -> its filter threshold: L_<t> keeps hypo_wer <= t; L and U max_hypo_wer
  case "$1" in L_*) echo "${1#L_}" ;; *) echo "$max_hypo_wer" ;; esac
}

less_filter() {  # task system iter lang: L (and U) keep hypo_wer <= max_hypo_wer (LLM labels), L_<t>
  # keeps hypo_wer <= t (the same LLM labels), N keeps all
  local dir
  dir="$(less_system_dir "$1" "$2" "$3")"
  if less_uses_llm "$2"; then
    less_need 8 "$(less_llm_out "$1" "$3")"
  else
    less_need 8 "$(less_pl_dir "$1" "$2" "$3")/${unsup_part}_cuts_pl.jsonl.gz"
  fi
  if less_uses_llm "$2"; then
    python -m less.bin.filter_pl --in-cuts "$(less_llm_out "$1" "$3")" --task "$(less_model_task "$1")" --lang "$4" \
      --max-hypo-wer "$(less_threshold "$2")" --label llm \
      --annotated-cuts "$dir/${unsup_part}_cuts_filtered.jsonl.gz" --out-cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz"
  else
    python -m less.bin.filter_pl --in-cuts "$(less_pl_dir "$1" "$2" "$3")/${unsup_part}_cuts_pl.jsonl.gz" \
      --task "$(less_model_task "$1")" --lang "$4" --max-hypo-wer -1 --label teacher --out-cuts "$dir/${unsup_part}_cuts_kept.jsonl.gz"
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

less_ssl_init() {  # task: sets the array ssl_init, the training flags that start the encoder from SSL
  # pretraining (none when ssl=none); SpeechLM: also its unit encoder and UCTC head (the model has
  # the unit encoder: less_speechlm_overrides)
  ssl_init=()
  [ "${ssl:-none}" = none ] && return 0
  ssl_init=(--init-encoder-from "$(less_ssl_checkpoint "$1")")
  [ "$ssl" = speechlm ] && ssl_init+=(--init-prefixes "encoder_embed.,encoder.,unit_encoder.,ctc_output.")
  # shellcheck disable=SC2206  # ssl_finetune_opts holds flags
  ssl_init+=(${ssl_finetune_opts:-})
  return 0
}

less_speechlm_overrides() {  # sets the array speechlm_overrides: --model-overrides of every model of a
  # --ssl speechlm run (none otherwise)
  speechlm_overrides=()
  # shellcheck disable=SC2034  # the recipe reads it
  [ "${ssl:-none}" = speechlm ] && speechlm_overrides=(--model-overrides "{\"unit_encoder_layers\":${speechlm_unit_layers:-2}}")
  return 0
}

less_ssl_pretrain() {  # task unlabeled_cuts [more ssl_pretrain flags: model, batch size, threads...]
  case "${ssl:-none}" in
    none) return 0 ;;
    bestrq | birq | speechlm) ;;
    *) less_die "--ssl must be none, bestrq, birq or speechlm, not '$ssl'" ;;
  esac
  less_need 4 "$2"
  # shellcheck disable=SC2086  # ssl_opts is a list of flags
  # shellcheck disable=SC2086  # ssl_cmd is a command line
  ${ssl_cmd:-python -m less.bin.ssl_pretrain} --method "$ssl" --train-cuts "$2" --exp-dir "$exp/$1/ssl_${ssl}" \
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
    [ "$1" = asr ] || less_die "system U is Mandarin ASR only so far (its loss scores character hypotheses with a character n-gram LM); drop it from --systems for $1"
    less_need 9 "$dir/${unsup_part}_cuts_filtered.jsonl.gz" "$dir/ngram.arpa"
    unsup=(--unsup-cuts "$dir/${unsup_part}_cuts_filtered.jsonl.gz" --unsup-lm "$dir/ngram.arpa")
    # shellcheck disable=SC2206  # unsup_opts holds flags
    unsup+=(${unsup_opts:-})
  fi
  if [ "$student_init" = teacher ]; then
    # the teacher as decoding and pseudo-labelling use it: the average of its last epochs
    read -r teacher epochs <<<"$(less_teacher "$1" "$2" "$3")"
    init=(--init-from "$teacher/epoch-$epochs.pt" --init-avg "$(less_avg "$epochs")"
          --init-schedule "${student_schedule:-continue}")
  elif [ "${ssl:-none}" != none ]; then
    less_ssl_init "$1"
    init=("${ssl_init[@]}")
  fi
  # shellcheck disable=SC2086  # train_cmd is a command line
  ${train_cmd:-python -m less.bin.train} --task "$(less_model_task "$1")" --exp-dir "$exp/$1/$2/iter$3" --train-cuts "$train_cuts" \
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
  for s in $4; do  # L and every L_<threshold> against N
    less_uses_llm "$s" && [ "$s" != U ] && [[ " $4 " == *" N "* ]] && paired+=(--paired "$s,N")
  done
  if [[ " $4 " == *" S_cont "* ]]; then
    [[ " $4 " == *" L "* ]] && paired+=(--paired "L,S_cont")
    [[ " $4 " == *" N "* ]] && paired+=(--paired "N,S_cont")
  fi
  : >"$root/RESULTS.md.tmp"
  for task in $3; do
    python -m less.bin.report --task "$task" --group "seeds=$runs" "${paired[@]}" --out "$root/RESULTS-$task.md"
    cat "$root/RESULTS-$task.md" >>"$root/RESULTS.md.tmp"
  done
  mv "$root/RESULTS.md.tmp" "$root/RESULTS.md"
}

less_log() {  # message: a timestamped line naming the recipe and line
  echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*"
}

less_combine_cuts() {  # out source...: the cut sets combined into out (once; written atomically)
  local out=$1
  shift
  [ -f "$out" ] && return 0
  less_log "the unlabeled set = $*"
  lhotse combine "$@" "${out%.jsonl.gz}.tmp.jsonl.gz"
  mv "${out%.jsonl.gz}.tmp.jsonl.gz" "$out"
}

less_vad_user_audio() {  # lang out_cuts [more vad_segment flags]: stage 1, the recordings below
  # --unsup-audio-dir (your own long audio) cut by the VAD into segments of min_utt_duration to
  # max_utt_duration seconds; with skip_bad_audio=true unreadable files are passed over (and logged)
  local lang=$1 out=$2 skip=()
  shift 2
  [ "$skip_bad_audio" = true ] && skip=(--skip-bad-audio)
  python -m less.bin.vad_segment --audio-dir "$unsup_audio_dir" --language "$lang" "$@" \
    --max-segment "$max_utt_duration" --min-segment "$min_utt_duration" --out-cuts "$out" "${skip[@]}"
}

less_user_audio_features() {  # vad_cuts out_cuts [compute_fbank flags]: stage 2, the features of the
  # segments stage 1 (less_vad_user_audio) cut from the recordings below --unsup-audio-dir
  local vad_cuts=$1 out=$2
  shift 2
  less_need 2 "$vad_cuts"
  python -m less.bin.compute_fbank "$@" --in-cuts "$vad_cuts" --out-cuts "$out"
}

less_model_args() {  # lang-dir flags...: sets the arrays train_args and ssl_args from the recipe's
  # model max_duration dtype train_workers num_threads model_overrides train_opts
  train_args=("$@" --model "$model" --max-duration "$max_duration" --dtype "$dtype"
              --num-workers "$train_workers" --num-threads "$num_threads")
  ssl_args=(--model "$model" --max-duration "$max_duration" --dtype "$dtype" --num-workers "$train_workers"
            --num-threads "$num_threads")
  if [ -n "${model_overrides:-}" ]; then
    train_args+=(--model-overrides "$model_overrides")
    ssl_args+=(--model-overrides "$model_overrides")
  fi
  # shellcheck disable=SC2206  # train_opts holds flags
  train_args+=(${train_opts:-})
}

less_loop() {  # task lang sup_train sup_valid unsup_cuts [files stage 4 needs]: stages 4-10 and the report
  # The part every recipe shares: seed model S (with --ssl: after pretraining its encoder), its
  # decoding, then for each iteration 1..num_iters and each system: pseudo-labels, LLM correction
  # (systems that use it), filter, mix + student, decoding; then exp/RESULTS.md. Each stage
  # appends its time to exp/timing.tsv. Reads the recipe's arrays train_args, ssl_args
  # (less.bin.train / ssl_pretrain flags) and decode_args (methods and --test NAME=CUTS), and
  # stage stop_stage num_iters systems train_cmd seed_epochs student_epochs num_threads.
  # An empty unsup_cuts stops after the seed (stages 6-10 need it). Optional, set by the recipe:
  #   seed_train_args   array: the seed's training flags where they differ from the students'
  #   llm_correct_fn    the function of stage 7 (arguments: task iter lang; default
  #                     less_llm_correct, which reads the llm_* options)
  #   unsup_lm_text     text-only corpus (files) of system U's n-gram LM; U needs it, with
  #   unsup_lm_tokens   the CTC tokens.txt that LM gives a probability to
  #   speechlm_text     --ssl speechlm: the text-only corpus its units are made from (needs
  #   speechlm_lang_dir the character lang dir; the units come from a plain seed model:
  #                     speechlm_tokenizer, or one trained here)
  #   abx_tests         "name=cuts ...": with --ssl, stage 5 measures the ABX error of the
  #                     pretrained encoder's layers (abx_layers, abx_opts) on these test sets
  #   abx_phones_dir    where exact phone alignments <task>_<name>.phones.jsonl are (less_abx)
  #   report            false: no exp/RESULTS.md (a recipe that reports over several tasks)
  local task=$1 lang=$2 sup_train=$3 sup_valid=$4 unsup_cuts=$5 iter system teacher teacher_epochs
  local test_files=() seed_args=() speechlm_args=() i
  shift 5
  [[ " $systems " == *" U "* ]] && [ -z "${unsup_lm_text:-}" ] &&
    less_die "system U needs a text-only corpus for its n-gram LM, and this recipe gives $task none (egs/mini/less has one)"
  if [ "${ssl:-none}" = speechlm ] && [ -z "${speechlm_text:-}" ]; then
    less_die "--ssl speechlm needs a text-only corpus and a unit lexicon, and this recipe gives $task none (egs/mini/less has them); use bestrq or birq here"
  fi
  less_check_systems "$systems" "$num_iters"
  for (( i = 0; i < ${#decode_args[@]}; i++ )); do
    [ "${decode_args[$i]}" = --test ] && test_files+=("${decode_args[$((i + 1))]#*=}")
  done
  less_speechlm_overrides  # SpeechLM's unit encoder is part of every model of the run
  if declare -p seed_train_args &>/dev/null; then
    seed_args=("${seed_train_args[@]}")
  else
    seed_args=("${train_args[@]}")
  fi
  if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    less_time_begin 4 "$task"
    less_need 4 "$sup_train" "$sup_valid" "$@"
    if [ "${ssl:-none}" != none ]; then
      less_need 4 "$unsup_cuts"
      if [ "$ssl" = speechlm ]; then
        less_speechlm_units "$task" "$sup_train" "$sup_valid" "$unsup_cuts" "${seed_args[@]}"
      fi
      less_log "Stage 4: $ssl pretraining of the encoder on the unlabeled set ($unsup_cuts)"
      less_ssl_pretrain "$task" "$unsup_cuts" "${ssl_args[@]}" "${speechlm_args[@]}"
    fi
    less_log "Stage 4: train the seed model S (iteration 0, $task) on $sup_train"
    less_ssl_init "$task"
    # shellcheck disable=SC2086  # train_cmd is a command line
    ${train_cmd:-python -m less.bin.train} --task "$(less_model_task "$task")" --exp-dir "$exp/$task/iter0" \
      --num-epochs "$seed_epochs" --train-cuts "$sup_train" --valid-cuts "$sup_valid" \
      "${seed_args[@]}" "${speechlm_overrides[@]}" "${ssl_init[@]}"
    less_time_end
  fi
  if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    less_log "Stage 5: decode the seed model ($task)"
    less_time_begin 5 "$task"
    less_need 5 "$exp/$task/iter0/epoch-$seed_epochs.pt" "${test_files[@]}"
    less_decode "$exp/$task/iter0" "$seed_epochs" "${decode_args[@]}"
    [ "${ssl:-none}" = none ] || [ -z "${abx_tests:-}" ] || less_abx "$task"
    less_time_end
  fi
  local iters=$num_iters
  if [ -z "$unsup_cuts" ] && [ "$stage" -le 10 ] && [ "$stop_stage" -ge 6 ]; then
    [ "$stage" -ge 6 ] && less_die "stages 6-10 need unlabeled audio, and this run has none"
    less_log "no unlabeled audio: stopping after the seed model (stages 6-10 need it)"
    iters=0
  fi
  for iter in $(seq 1 "$iters"); do
    if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
      less_log "Stage 6: pseudo-label the unlabeled set ($task, iteration $iter)"
      less_time_begin 6 "$task"
      less_need 6 "$unsup_cuts"
      for system in $systems; do
        [ "$system" = S_cont ] && continue
        if [ -z "${whisper_teacher:-}" ] || [ "$iter" -gt 1 ]; then
          read -r teacher teacher_epochs <<<"$(less_teacher "$task" "$system" "$iter")"
          less_need 6 "$teacher/epoch-$teacher_epochs.pt"
        fi
        less_pseudo_label "$task" "$system" "$iter" "$unsup_cuts" --num-threads "$num_threads"
      done
      less_time_end
    fi
    if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ] && less_any_llm "$systems"; then
      less_log "Stage 7: LLM correction of the pseudo-labels ($task, iteration $iter)"
      less_time_begin 7 "$task"
      less_need 7 "$(less_llm_in "$task" "$iter")"
      "${llm_correct_fn:-less_llm_correct}" "$task" "$iter" "$lang"
      less_time_end
    fi
    if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
      less_log "Stage 8: filter the pseudo-labels ($task, iteration $iter)"
      less_time_begin 8 "$task"
      for system in $systems; do
        [ "$system" = S_cont ] && continue
        less_filter "$task" "$system" "$iter" "$lang"
        if [ "$system" = U ]; then
          # shellcheck disable=SC2086  # unsup_lm_text is a list of files
          less_unsup_lm "$task" "$iter" "$lang" "${unsup_lm_tokens:?set unsup_lm_tokens with unsup_lm_text}" $unsup_lm_text
        fi
      done
      less_time_end
    fi
    if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
      less_log "Stage 9: mix and train the students ($task, iteration $iter)"
      for system in $systems; do
        less_time_begin "9:$system" "$task"
        less_train_student "$task" "$system" "$iter" "$sup_train" "$sup_valid" "${train_args[@]}" "${speechlm_overrides[@]}"
        less_time_end
      done
    fi
    if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
      less_log "Stage 10: decode the students ($task, iteration $iter)"
      less_time_begin 10 "$task"
      for system in $systems; do
        less_need 10 "$exp/$task/$system/iter$iter/epoch-$student_epochs.pt"
        less_decode "$exp/$task/$system/iter$iter" "$student_epochs" "${decode_args[@]}"
      done
      less_time_end
    fi
  done
  if [ "${report:-true}" = true ] && [ "$stage" -le 10 ] && [ "$stop_stage" -ge 5 ]; then
    less_log "Report: $exp/RESULTS.md"
    less_report
    cat "$exp/RESULTS.md"
  fi
}

less_speechlm_units() {  # task sup_train sup_valid unsup_cuts [seed flags]: SpeechLM-P's phoneme units
  # of the unlabeled audio and of the text-only corpus $speechlm_text, made by a plain seed model
  # (speechlm_tokenizer, or one trained here with the seed's flags); sets the array speechlm_args
  local tokenizer=${speechlm_tokenizer:-}
  if [ -z "$tokenizer" ]; then
    tokenizer=$exp/$1/speechlm_tokenizer/epoch-$seed_epochs.pt
    less_log "Stage 4: a plain seed model as SpeechLM's unit tokenizer"
    # shellcheck disable=SC2086  # train_cmd is a command line
    ${train_cmd:-python -m less.bin.train} --task "$(less_model_task "$1")" --exp-dir "$exp/$1/speechlm_tokenizer" \
      --num-epochs "$seed_epochs" --train-cuts "$2" --valid-cuts "$3" "${@:5}"
  fi
  less_need 4 "$tokenizer" "$speechlm_text"
  # an epoch-N.pt of a training dir: the model as decoding averages it (--avg, with the running
  # average), whose units are more accurate than the last epoch's weights; any other file as it is
  local tokenizer_model=(--checkpoint "$tokenizer")
  if [[ $(basename "$tokenizer") =~ ^epoch-([0-9]+)\.pt$ ]]; then
    tokenizer_model=(--exp-dir "$(dirname "$tokenizer")" --epoch "${BASH_REMATCH[1]}" --avg "${avg:-1}")
  fi
  less_log "Stage 4: SpeechLM units of the unlabeled set and of the text-only corpus"
  python -m less.bin.speechlm_units "${tokenizer_model[@]}" --lang-dir "$speechlm_lang_dir" \
    --ref-cuts "$2" --valid-cuts "$3" --hyp-cuts "$4" --text "$speechlm_text" \
    --num-threads "$num_threads" --out-dir "$exp/$1/speechlm_units"
  speechlm_args=(--unit-dir "$exp/$1/speechlm_units" --lang-dir "$speechlm_lang_dir"
                 --unit-encoder-layers "${speechlm_unit_layers:-2}")
}

less_phones_file() {  # phones_dir task split: the one name of a split's exact phone alignments
  echo "$1/$2_$3.phones.jsonl"
}

less_phone_alignments() {  # data task split...: the exact phone times of those splits of the mini
  # corpus (less.bin.phone_alignments: espeak-ng's own phoneme events), made once per corpus in
  # <data>/phones (less_phones_file), where less_abx looks (abx_phones_dir=<data>/phones)
  local split out
  for split in "${@:3}"; do
    out="$(less_phones_file "$1/phones" "$2" "$split")"
    [ -f "$out" ] || python -m less.bin.phone_alignments --data-dir "$1" --task "$2" --split "$split" --out "$out"
  done
}

less_abx() {  # task: ABX error of the pretrained encoder's layers (abx_layers; fbank as the floor)
  # on each "name=cuts" of abx_tests. Units: exact phones where abx_phones_dir has
  # <task>_<name>.phones.jsonl (the mini corpus: less.bin.phone_alignments), else characters
  # aligned by the seed model's CTC forced alignment (which the seed's own errors blur)
  local spec name out abx=() align=() layer phones
  for layer in fbank ${abx_layers:-final}; do abx+=(--layer "$layer"); done
  # shellcheck disable=SC2206  # abx_opts holds flags
  abx+=(${abx_opts:-})
  for spec in $abx_tests; do
    name=${spec%%=*}
    out="$exp/$1/ssl_$ssl/abx_${name}.json"
    [ -f "$out" ] && continue
    phones="$(less_phones_file "${abx_phones_dir:-}" "$1" "$name")"
    if [ -n "${abx_phones_dir:-}" ] && [ -f "$phones" ]; then
      align=(--alignments "$phones" --units phone)
    else
      align=(--alignments "$exp/$1/iter0/align_${name}.jsonl" --align-checkpoint "$exp/$1/iter0/epoch-$seed_epochs.pt")
    fi
    less_log "Stage 5: ABX of the $ssl encoder on $name (${align[1]})"
    python -m less.bin.abx --cuts "${spec#*=}" "${align[@]}" --checkpoint "$(less_ssl_checkpoint "$1")" \
      --num-threads "$num_threads" "${abx[@]}" --out "$out"
  done
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
