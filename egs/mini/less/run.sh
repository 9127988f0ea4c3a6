#!/usr/bin/env bash
# LESS on the embedded mini corpus: a synthetic bilingual corpus built on this machine
# (espeak-ng voices, noise, reverberation), two tasks:
#   asr  Mandarin speech -> Mandarin text         (corpus mini-asr)
#   ast  Spanish speech  -> English translation   (corpus mini-ast)
#
# Stages (each skips work already done and can be resumed after a kill):
#   0  synthesize the corpus: manifests in data/manifests, audio in data/audio
#   1  VAD-segment the long unlabeled recordings (Silero VAD)
#   2  fbank features (lilcom) for every split and for the noise set
#   3  token inventories: data/lang_char (zh), data/lang_bpe_<N>_{es,en}
#   4  with --ssl bestrq|birq: pretrain the encoder on unsup_wild     exp/<task>/ssl_<ssl>
#      with --ssl speechlm (asr): a plain seed as the unit tokenizer  exp/asr/speechlm_tokenizer,
#      its phoneme units of unsup_wild and of the text-only corpus     exp/asr/speechlm_units,
#      then SpeechLM-P pretraining on them                             exp/asr/ssl_speechlm
#      train the seed model S (iteration 0) on train_sup           exp/<task>/iter0
#      (its encoder starts from the pretrained one when --ssl is set)
#   5  decode dev, test_clean, test_wild with it; with --ssl (asr): ABX of the pretrained
#      encoder's layers on test_clean and test_wild (exact phone times from espeak-ng's events,
#      data/phones)
#   for each iteration k = 1..num_iters and each system in $systems:
#   6  pseudo-label unsup_wild with the teacher (S for k = 1, else the system's
#      student of k-1); at k = 1 both systems share the same teacher outputs
#   7  L (and U) only: LLM correction (asr: a small Mandarin correction LM trained on the
#      text-only corpus with the seed's own dev errors simulated, correct mode, or a small
#      LM rescoring the N-best with --asr-llm-mode rescore; ast: Gemma 3 270M prompted
#      with worked examples from train_sup, correct mode)
#   8  filter: L keeps hypo_wer <= max_hypo_wer (asr: asr_max_hypo_wer) with LLM labels; N keeps all
#      (teacher labels, no LLM); U: L's filter, and a character n-gram LM on the
#      text-only corpus + the kept cuts
#   9  mix train_sup + kept cuts, train the student          exp/<task>/<system>/iter<k>
#      (U: also the sequence-level unsupervised loss on the rejected cuts)
#  10  decode the student; write exp/RESULTS.md (+ plots)
#
# With both tasks, stages 1-10 of asr and ast run side by side (--parallel-tasks true), one
# CPU thread each, logs in exp/log/run-<task>.log. Every stage appends its wall and CPU time
# to exp/timing.tsv: `python tools/bench/recipe_time.py exp/timing.tsv` prints the table.
# --seeds "1 2 3" repeats stages 4-10 per training seed (exp/seed<s>, pseudo-labels in
# exp/seed<s>/pl) on the one corpus and reports mean, spread and paired differences.
#
# Usage: ./run.sh [--stage N] [--stop-stage M] [--profile tiny|default|large] [--help]
set -euo pipefail
cd "$(dirname "$0")"
declare -a run_args=("$@")  # forwarded to the per-task and per-seed runs (not an option)

stage=0                 # first stage to run
stop_stage=100          # last stage to run
profile=default         # mini corpus size: tiny (tests), default (the recipe), large (the paper's ~8x unlabeled)
seed=42                 # corpus seed: same seed, same corpus
conditions=default      # wild vs supervised speech: default (the seed recognises most wild speech),
                        # padded (default + silence around single utterances) or hard
tasks="asr ast"         # which tasks to run (asr: Mandarin ASR, ast: Spanish->English; asr_en: English ASR,
                        # whose pseudo-labels an offline English LLM corrects: not in the default run yet)
parallel_tasks=true     # run stages 1-10 of the tasks side by side (logs in exp/log/run-<task>.log)
nj=2                    # parallel jobs for data preparation
speed_perturb=false     # add 0.9x/1.1x copies of train_sup (triples training time)
bpe_vocab_size=256      # BPE size for Spanish and English
data=data               # where manifests, features and lang dirs go
exp=exp                 # where models, decoding results and RESULTS.md go
model=xs                # model configuration (xs: a few million parameters, for CPUs)
train_cmd="python -m less.bin.train"  # training launcher; multi-GPU: "torchrun --nproc-per-node N -m less.bin.train"
ssl_cmd="python -m less.bin.ssl_pretrain"  # pretraining launcher (--ssl); multi-GPU: "torchrun --nproc-per-node N -m less.bin.ssl_pretrain"
seed_epochs=14          # epochs of the seed model S (30-s batches: ~1,030 steps; on dev (seed 42) 14 epochs
                        # of 30-s batches reached 26.7 % CER for about the time of 20 epochs of 60-s ones
                        # (36.1 %); the 30 60-s epochs of the previous default reached 20.6 % in 1.5x the time)
asr_en_seed_epochs=30   # epochs of the English (asr_en) seed unless --seed-epochs is given: on its dev (seed
                        # 42) 14 epochs gave 65.71 % WER and teacher labels 89 % wrong, 30 gave 30.43 %
seed_max_duration=30    # seconds of audio per batch of the seed (more, smaller steps learn faster per epoch
                        # on half an hour of audio); students and pretraining use --max-duration
warmup_batches=100      # Eden warm-up of the seed (students continue their teacher's schedules)
student_epochs=4        # epochs of every student (continuing its teacher's schedules: on dev the N
                        # student of seed 42 reached 18.09 % CER after 4, 20.55 after 2; restarted
                        # schedules needed 8 for 17.43 and were at 22.56 after 4)
student_init=teacher    # students start from their teacher (teacher) or from scratch (scratch;
                        # then give them the seed's 30 epochs: --student-epochs 30)
student_schedule="continue"  # a student from its teacher continues the teacher's LR and regularisation
                        # schedules (continue), or restarts them (restart: warm-up, peak LR, high
                        # dropout again; on dev the restarted student is worse than its teacher for
                        # its first 4-5 epochs)
max_duration=60         # seconds of audio per training batch of the students (the seed: seed_max_duration)
lr_batches=2000         # Eden: batches of LR decay (small data: fewer than icefall's 7500)
lr_epochs=8             # Eden: epochs of LR decay
ref_duration=2          # Zipformer schedules count batch x max_duration / ref_duration: icefall's 600
                        # suits hundreds of hours; on minutes of audio the regularisation (layer
                        # skipping, dropout) would never anneal and CTC stays blank for ~20 epochs
                        # (seed dev CER after 15/20 epochs: 68.5/40.0 % at 4, 64.7/36.1 % at 2)
avg=3                   # decode the average of the last N epochs (running averaged model; the 14-epoch seed's
                        # dev CER averaging 1 / 2 / 3 / 5 epochs: 28.34 / 26.70 / 26.70 / 29.98)
train_workers=0         # data-loader workers while training (0: in the trainer; loading is ~2 % of a step)
dtype=auto              # training autocast: fp32, bf16, auto (bf16 on a CPU with native bf16, else fp32)
valid_every=5           # validate on dev after every N-th epoch (and the last)
train_seed=42           # seed of training (weights, batches, augmentation); the corpus has --seed
seeds=                  # e.g. "1 2 3": stages 4-10 once per training seed, in exp/seed<s>
pl_dir=                 # pseudo-labels, LLM answers, kept cuts, mixes (default: data/pl)
report=true             # write exp/RESULTS.md at the end (false in the per-task runs)
num_iters=1             # LESS iterations (the student of k teaches k+1)
systems="N L"           # students to train: N noisy student without LLM, L LESS, S_cont (control:
                        # the teacher trained as long again on train_sup alone), U (asr only: L plus
                        # the sequence-level unsupervised loss on the cuts L's filter rejects), L_<t>
                        # (L's LLM labels kept at hypo_wer <= t, e.g. L_0.3; one iteration)
max_hypo_wer=0.1        # LESS filter threshold of L (the paper's) for ast and asr_en
asr_max_hypo_wer=0.3    # ... and for Mandarin, chosen on dev over seeds 42, 1, 2 (dev CER of L: 0.3 below
                        # 0.1 on every seed; the correction LM stand-in rewrites more than an LLM would)
unsup_lm_order=3        # system U: order of its character n-gram LM (text-only corpus + L's kept cuts)
unsup_opts=             # system U: more less.bin.train flags, e.g. "--unsup-weight=0.3 --unsup-lm-weight=0.5"
                        # (default weight 0.1, chosen on dev: RESULTS.md)
pl_ratio=0              # hours of pseudo-labelled audio per supervised hour (0: all kept)
beam_size=10            # beam of pseudo-labelling and decoding (asr: CTC prefix beam before rescoring)
ast_beam_size=4         # ast: beam of the attention decoder's search (dev BLEU of the seed: 24.51 at 4,
                        # 23.93 at 10, in 60 % of the time)
asr_llm_mode=correct    # Mandarin "LLM" of stage 7: correct (a correction LM rewrites the 1-best) or
                        # rescore (a text LM rescores the N-best); no Chinese instruct LLM ships offline
asr_lm_config=tiny      # size of that Mandarin LM (less.bin.train_text_lm --config)
asr_lm_epochs=2         # its training epochs over the text-only corpus
asr_lm_weight=0.5       # LM weight in rescore mode
asr_lm_dir=             # where that LM is trained (default exp/asr/text_corrector or text_lm; with
                        # --seeds one LM, the stand-in for a fixed LLM, serves every seed)
ast_llm=builtin:gemma3-270m  # English LLM correcting translations: builtin:gemma3-270m (a base model,
                        # prompted few-shot) or builtin:smollm2 (instruct; made them worse)
ast_llm_few_shot=8      # worked examples (train_sup references with simulated errors) in the prompt of a
                        # base LM; 0 for instruct models
ast_llm_backend=hf      # hf (transformers, local) or openai (any OpenAI-compatible server)
asr_en_llm=builtin:gemma3-270m  # English LLM correcting the asr_en transcripts (few-shot, like ast_llm)
asr_en_llm_few_shot=8   # its worked examples (asr_en train_sup transcripts with simulated errors); 0 for instruct
asr_en_llm_backend=hf   # hf or openai (then --ast-llm-base-url is its server)
ast_llm_base_url=http://127.0.0.1:8000/v1  # server of the openai backend (vLLM, Ollama, NIM...)
llm_batch_size=16       # LLM batch size
llm_threads=1           # torch threads of the LLM (1 is fastest on a busy small CPU)
llm_dtype=bfloat16      # English LLM weights: bfloat16 (~3x faster on CPUs with native bf16; Gemma gave the fp32
                        # answer for 46 of 48 probe sentences), float32, or auto (fp32 on CPUs)
llm_context_segments=1  # K > 1: K consecutive segments of a recording per LLM request (the authors' recipe)
ctc_scale=0.3           # CTC loss weight (icefall's 0.1 learns CTC too slowly for this little data)
aed_scale=0.7           # attention-decoder loss weight
num_threads=0           # torch CPU threads of training/decoding (0: all cores; 1 when sharing a CPU)
noise_aug=true          # mix the synthetic noise set into training batches (icefall's MUSAN)
volume_db=              # volume perturbation range in dB, e.g. -18,6 (Kaldi's 1/8..2); empty: off
train_opts=             # more less.bin.train flags for the seed and students, e.g. "--noise-snr=0,20"
ssl=none                # self-supervised pretraining of the encoder on unsup_wild before the seed:
                        # none, bestrq, birq or speechlm (asr only: SpeechLM-P with the text-only corpus;
                        # the seed then has its unit encoder and starts from its UCTC head too)
speechlm_unit_layers=2  # --ssl speechlm: layers of the shared unit encoder (kept in every model of the run)
speechlm_tokenizer=     # --ssl speechlm: seed checkpoint that makes the units (default: train a plain seed)
ssl_epochs=15           # pretraining epochs
ssl_opts=               # more less.bin.ssl_pretrain flags, e.g. "--enhanced-start-batches=3000"
ssl_finetune_opts=      # more less.bin.train flags of the models that start from the pretrained encoder,
                        # e.g. "--encoder-lr-scale 0.1 --freeze-encoder-batches 200"
abx_layers="embed 0 1 2 3 4 5 final"  # encoder layers whose ABX error stage 5 measures (with --ssl)
abx_opts=               # more less.bin.abx flags, e.g. "--context any --max-group-size 3"
. ../../../tools/path.sh
. "$LESS_ROOT/tools/parse_options.sh"
. "$LESS_ROOT/tools/less_stages.sh"
unsup_part=unsup_wild
pl_dir="${pl_dir:-$data/pl}"

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run.sh:${BASH_LINENO[0]}) $*"; }

lang_of_task() { case "$1" in asr) echo zh ;; asr_en) echo en ;; *) echo es ;; esac; }  # spoken language
self="$PWD/$(basename "$0")"
ntasks=$(wc -w <<<"$tasks")

# ----------------------------------------------------------- several training seeds
# The corpus (stages 0-3) once; stages 4-10 per seed in exp/seed<s>, one after the other
# (each runs its tasks side by side); then one report over the seeds.
if [ -n "$seeds" ]; then
  if [ "$stage" -le 3 ]; then
    "$self" "${run_args[@]}" --seeds "" --report false --stop-stage "$(( stop_stage < 3 ? stop_stage : 3 ))"
  fi
  if [ "$stop_stage" -ge 4 ]; then
    for s in $seeds; do
      log "Training seed $s: stages $(( stage > 4 ? stage : 4 ))-$stop_stage in $exp/seed$s"
      "$self" "${run_args[@]}" --seeds "" --train-seed "$s" --exp "$exp/seed$s" --pl-dir "$exp/seed$s/pl" \
        --asr-lm-dir "${asr_lm_dir:-$exp/asr_$asr_llm_mode-lm}" --stage "$(( stage > 4 ? stage : 4 ))"
    done
    if [ "$report" = true ] && [ "$stop_stage" -ge 10 ]; then
      log "Report over seeds $seeds: $exp/RESULTS.md"
      less_seeds_report "$exp" "$seeds" "$tasks" "$systems"
      cat "$exp/RESULTS.md"
    fi
  fi
  exit 0
fi

# ------------------------------------------------------------ tasks side by side
# Stage 0 (and the noise set's features) once for both tasks; stages 1-10 of each task in
# its own process with one CPU thread, so that the two trainings keep both cores busy.
if [ "$parallel_tasks" = true ] && [ "$ntasks" -gt 1 ] && [ "$stop_stage" -ge 1 ] && [ "$stage" -le 10 ]; then
  if [ "$stage" -le 0 ]; then
    "$self" "${run_args[@]}" --parallel-tasks false --report false --stop-stage 0
  fi
  if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    less_time_begin 2 noise
    python -m less.bin.compute_fbank --recordings "$data/manifests/mini-noise_recordings.jsonl.gz" \
      --out-cuts "$data/fbank/mini-noise_cuts.jsonl.gz"
    less_time_end
  fi
  mkdir -p "$exp/log"
  threads=$num_threads
  [ "$threads" -eq 0 ] && threads=$(( $(nproc) / ntasks > 0 ? $(nproc) / ntasks : 1 ))
  pids=()
  for task in $tasks; do
    log "Stages $(( stage > 1 ? stage : 1 ))-$(( stop_stage < 10 ? stop_stage : 10 )) of $task in the background ($threads thread(s)): $exp/log/run-$task.log"
    "$self" "${run_args[@]}" --parallel-tasks false --report false --tasks "$task" --num-threads "$threads" \
      --nj 1 --stage "$(( stage > 1 ? stage : 1 ))" >"$exp/log/run-$task.log" 2>&1 &
    pids+=("$!")
  done
  failed=0
  i=0
  for task in $tasks; do
    if wait "${pids[$i]}"; then
      log "$task: stages done"
    else
      failed=1
      echo "ERROR: the $task run failed; the end of $exp/log/run-$task.log:" >&2
      tail -n 30 "$exp/log/run-$task.log" >&2
    fi
    i=$(( i + 1 ))
  done
  [ "$failed" -eq 0 ] || exit 1
  if [ "$report" = true ] && [ "$stop_stage" -ge 5 ]; then
    log "Report: $exp/RESULTS.md"
    less_report
    cat "$exp/RESULTS.md"
  fi
  exit 0
fi

# English's seed schedule, chosen on its own dev set (the default one was chosen on Mandarin's);
# asr_en runs as its own task process unless --parallel-tasks false
if [ "$tasks" = asr_en ]; then
  given=false
  for arg in "${run_args[@]}"; do [[ "$arg" == --seed-epochs* ]] && given=true; done
  [ "$given" = true ] || seed_epochs=$asr_en_seed_epochs
fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: synthesize the mini corpus (profile $profile, seed $seed)"
  less_time_begin 0 "${tasks// /+}"
  python -m less.local.mini.prepare --out-dir "$data" --profile "$profile" --seed "$seed" \
    --conditions "$conditions" --tasks "${tasks// /,}" --num-jobs "$nj"
  less_time_end
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "Stage 1: VAD-segment the unlabeled long recordings"
  for task in $tasks; do
    less_time_begin 1 "$task"
    python -m less.bin.vad_segment \
      --recordings "$data/manifests/mini-${task}_recordings_unsup_wild.jsonl.gz" \
      --supervisions "$data/manifests/mini-${task}_supervisions_unsup_wild.jsonl.gz" \
      --language "$(lang_of_task "$task")" \
      --out-cuts "$data/manifests/mini-${task}_cuts_unsup_wild.jsonl.gz"
    less_time_end
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "Stage 2: fbank features"
  for task in $tasks; do
    less_time_begin 2 "$task"
    for split in train_sup dev test_clean test_wild; do
      sp=false
      [ "$split" = train_sup ] && sp=$speed_perturb
      python -m less.bin.compute_fbank \
        --recordings "$data/manifests/mini-${task}_recordings_${split}.jsonl.gz" \
        --supervisions "$data/manifests/mini-${task}_supervisions_${split}.jsonl.gz" \
        --require-text true --speed-perturb "$sp" \
        --out-cuts "$data/fbank/mini-${task}_cuts_${split}.jsonl.gz"
    done
    python -m less.bin.compute_fbank \
      --in-cuts "$data/manifests/mini-${task}_cuts_unsup_wild.jsonl.gz" \
      --out-cuts "$data/fbank/mini-${task}_cuts_unsup_wild.jsonl.gz" --num-splits "$nj" --num-jobs "$nj"
    less_time_end
  done
  # the noise set mixed into training batches (--noise-aug), like MUSAN in icefall recipes
  python -m less.bin.compute_fbank --recordings "$data/manifests/mini-noise_recordings.jsonl.gz" \
    --out-cuts "$data/fbank/mini-noise_cuts.jsonl.gz"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "Stage 3: token inventories"
  for task in $tasks; do
    less_time_begin 3 "$task"
    sups="$data/manifests/mini-${task}_supervisions_train_sup.jsonl.gz"
    if [ "$task" = asr ]; then
      python -m less.bin.prepare_lang --type char --lang zh --out-dir "$data/lang_char" \
        --manifest "$sups" --extra-text "$data/text/mini-asr_text_only.zh.txt"
    elif [ "$task" = asr_en ]; then
      python -m less.bin.prepare_lang --type bpe --lang en --vocab-size "$bpe_vocab_size" \
        --out-dir "$data/lang_bpe_${bpe_vocab_size}_en_asr" \
        --manifest "$sups" --extra-text "$data/text/mini-asr_en_text_only.en.txt"
    else
      python -m less.bin.prepare_lang --type bpe --lang es --vocab-size "$bpe_vocab_size" \
        --out-dir "$data/lang_bpe_${bpe_vocab_size}_es" \
        --manifest "$sups" --extra-text "$data/text/mini-ast_text_only.es.txt"
      python -m less.bin.prepare_lang --type bpe --lang en --vocab-size "$bpe_vocab_size" \
        --field translation --out-dir "$data/lang_bpe_${bpe_vocab_size}_en" \
        --manifest "$sups" --extra-text "$data/text/mini-ast_text_only.en.txt"
    fi
    less_time_end
  done
fi

set_lang_args() {  # task: the array lang_args, its token dirs: CTC (transcript) [+ decoder (translation)]
  case "$1" in
    asr) lang_args=(--lang-dir "$data/lang_char") ;;
    asr_en) lang_args=(--lang-dir "$data/lang_bpe_${bpe_vocab_size}_en_asr") ;;
    *) lang_args=(--lang-dir "$data/lang_bpe_${bpe_vocab_size}_es" --decoder-lang-dir "$data/lang_bpe_${bpe_vocab_size}_en") ;;
  esac
}
set_train_args() {  # task [seconds]: the array train_args, the training flags of a task (seconds: batches
  # of that many seconds instead of --max-duration; less_loop adds SpeechLM's unit encoder)
  set_lang_args "$1"
  train_args=("${lang_args[@]}" --model "$model" --max-duration "${2:-$max_duration}" --lr-batches "$lr_batches"
    --lr-epochs "$lr_epochs" --warmup-batches "$warmup_batches" --ref-duration "$ref_duration"
    --num-workers "$train_workers" --ctc-scale "$ctc_scale" --aed-scale "$aed_scale" --num-threads "$num_threads"
    --dtype "$dtype" --valid-every-epochs "$valid_every" --seed "$train_seed")
  [ "$noise_aug" = true ] && train_args+=(--noise-cuts "$data/fbank/mini-noise_cuts.jsonl.gz")
  [ -n "$volume_db" ] && train_args+=("--volume-db=$volume_db")
  # shellcheck disable=SC2206  # train_opts holds flags
  train_args+=($train_opts)
}
set_ssl_args() {  # task: the array ssl_args, its pretraining flags (same model and batch schedule as training)
  ssl_args=(--model "$model" --max-duration "$max_duration" --lr-batches "$lr_batches" --lr-epochs "$lr_epochs"
    --warmup-batches 200 --ref-duration "$ref_duration" --num-workers "$train_workers" --num-threads "$num_threads"
    --valid-cuts "$(fbank "$1" dev)" --seed "$train_seed")
}
set_decode_args() {  # task: the array decode_args, its decoding methods and test sets
  local split
  decode_args=(--num-threads "$num_threads")
  if [ "$1" != ast ]; then
    decode_args+=(--method ctc-greedy-search --method attention-decoder-rescoring --attention-scales "0.5,1.0,2.0")
  else
    decode_args+=(--method attention-beam-search --method ctc-greedy-search)
  fi
  for split in dev test_clean test_wild; do
    decode_args+=(--test "$split=$(fbank "$1" "$split")")
  done
}
fbank() { echo "$data/fbank/mini-${1}_cuts_${2}.jsonl.gz"; }  # task split -> cut set
asr_beam_size=$beam_size
set_beam() { if [ "$1" = ast ]; then beam_size=$ast_beam_size; else beam_size=$asr_beam_size; fi; }  # task
less_check_systems "$systems" "$num_iters"
if [ "$ssl" = speechlm ] && [ "$tasks" != asr ]; then
  less_die "--ssl speechlm is Mandarin only (its units are espeak syllables of characters): add --tasks asr"
fi

mini_llm_correct() {  # task iter lang: stage 7, the mini recipe's offline LLMs (less_loop's llm_correct_fn)
  local llm_io lm_dir dev_errors server few_shot llm shots backend
  llm_io=(--in-cuts "$(less_llm_in "$1" "$2")" --out-cuts "$(less_llm_out "$1" "$2")"
          --batch-size "$llm_batch_size" --num-threads "$llm_threads"
          --llm-context-segments "$llm_context_segments")
  if [ "$1" = asr ]; then
    # No Chinese instruct LLM ships in any package: a small Mandarin LM trained on the
    # text-only corpus either rewrites the 1-best (a correction LM, trained on sentences
    # with simulated recognition errors) or rescores the teacher's N-best (real recipes
    # use an instruct LLM).
    if [ "$asr_llm_mode" = correct ]; then
      # its simulated errors are the seed's own on dev (stage 5): substitution pairs,
      # deletion/insertion shares and per-utterance error rates (never test results)
      lm_dir=${asr_lm_dir:-$exp/asr/text_corrector}
      dev_errors="$exp/asr/iter0/attention-decoder-rescoring/recogs-dev-attention_scale_1.0-epoch-${seed_epochs}_avg-$(less_avg "$seed_epochs").txt"
      less_need 7 "$dev_errors"
      python -m less.bin.train_text_lm --text "$data/text/mini-asr_text_only.zh.txt" --lang zh \
        --objective correct --out-dir "$lm_dir" --config "$asr_lm_config" --epochs "$asr_lm_epochs" \
        --confusions seed-errors --error-stats "$dev_errors"
      python -m less.bin.llm_correct "${llm_io[@]}" --task asr --lang zh --mode correct --backend hf \
        --model "$lm_dir" --prompt-template "$LESS_ROOT/less/llm/prompts/asr_zh_corrector.txt"
    else
      lm_dir=${asr_lm_dir:-$exp/asr/text_lm}
      python -m less.bin.train_text_lm --text "$data/text/mini-asr_text_only.zh.txt" --lang zh \
        --out-dir "$lm_dir" --config "$asr_lm_config" --epochs "$asr_lm_epochs"
      python -m less.bin.llm_correct "${llm_io[@]}" --task asr --lang zh --mode rescore --backend hf \
        --model "$lm_dir" --lm-weight "$asr_lm_weight"
    fi
  else
    # English: translations (ast) or transcripts (asr_en), corrected by an English LLM
    server=() few_shot=()
    if [ "$1" = ast ]; then
      llm=$ast_llm shots=$ast_llm_few_shot backend=$ast_llm_backend
    else
      llm=$asr_en_llm shots=$asr_en_llm_few_shot backend=$asr_en_llm_backend
    fi
    [ "$backend" = openai ] && server=(--base-url "$ast_llm_base_url")
    # a base LM learns the task from worked examples; never from dev or test
    [ "$shots" -gt 0 ] && few_shot=(--few-shot "$shots" --few-shot-source "$(fbank "$1" train_sup)"
      --exclude-cuts "$(fbank "$1" dev)" "$(fbank "$1" test_clean)" "$(fbank "$1" test_wild)")
    python -m less.bin.llm_correct "${llm_io[@]}" --task "$(less_model_task "$1")" --lang en --mode correct \
      --backend "$backend" --model "$llm" --dtype "$llm_dtype" "${server[@]}" "${few_shot[@]}"
  fi
}

# stages 4-10: the LESS loop every recipe shares (tools/less_stages.sh), once per task with its
# own token dirs, batch sizes, beam, filter threshold, decoding methods and stage-7 LLM
for task in $tasks; do
  set_lang_args "$task"
  tokens=()
  for (( i = 1; i < ${#lang_args[@]}; i += 2 )); do tokens+=("${lang_args[$i]}/tokens.txt"); done
  set_train_args "$task" "$seed_max_duration"
  seed_train_args=("${train_args[@]}")
  set_train_args "$task"
  set_ssl_args "$task"
  set_decode_args "$task"
  set_beam "$task"
  lang=en threshold=$max_hypo_wer unsup_lm_text='' unsup_lm_tokens='' speechlm_text='' speechlm_lang_dir='' abx_tests=''
  abx_phones_dir=$data/phones
  if [ "$task" = asr ]; then
    lang=zh threshold=$asr_max_hypo_wer
    unsup_lm_text=$data/text/mini-asr_text_only.zh.txt unsup_lm_tokens=$data/lang_char/tokens.txt
    speechlm_text=$unsup_lm_text speechlm_lang_dir=$data/lang_char
    abx_tests="test_clean=$(fbank asr test_clean) test_wild=$(fbank asr test_wild)"
    if [ "$ssl" != none ] && [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
      # ABX on exact phones: espeak-ng's own phoneme times, checked against the stored audio
      less_phone_alignments "$data" asr test_clean test_wild
    fi
  elif [[ " $systems " == *" U "* ]]; then
    less_die "system U is ASR only (its loss scores character hypotheses with a character n-gram LM); drop it from --systems or run --tasks asr"
  fi
  max_hypo_wer=$threshold report=false llm_correct_fn=mini_llm_correct \
    less_loop "$task" "$lang" "$(fbank "$task" train_sup)" "$(fbank "$task" dev)" "$(fbank "$task" unsup_wild)" \
    "${tokens[@]}"
done

if [ "$report" = true ] && [ "$stage" -le 10 ] && [ "$stop_stage" -ge 5 ]; then
  log "Report: $exp/RESULTS.md"
  less_report
  cat "$exp/RESULTS.md"
fi
