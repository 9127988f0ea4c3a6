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
#      train the seed model S (iteration 0) on train_sup           exp/<task>/iter0
#      (its encoder starts from the pretrained one when --ssl is set)
#   5  decode dev, test_clean, test_wild with it; with --ssl (asr): ABX of the pretrained
#      encoder's layers on test_clean and test_wild (alignments by the seed)
#   for each iteration k = 1..num_iters and each system in $systems:
#   6  pseudo-label unsup_wild with the teacher (S for k = 1, else the system's
#      student of k-1); at k = 1 both systems share the same teacher outputs
#   7  L only: LLM correction (asr: a small Mandarin correction LM trained on the
#      text-only corpus with simulated recognition errors, correct mode, or a small LM
#      rescoring the N-best with --asr-llm-mode rescore; ast: SmolLM2-135M-Instruct,
#      correct mode)
#   8  filter: L keeps hypo_wer <= max_hypo_wer with LLM labels; N keeps all
#      (teacher labels, no LLM)
#   9  mix train_sup + kept cuts, train the student          exp/<task>/<system>/iter<k>
#  10  decode the student; write exp/RESULTS.md (+ plots)
#
# Usage: ./run.sh [--stage N] [--stop-stage M] [--profile tiny|default] [--help]
set -euo pipefail
cd "$(dirname "$0")"

stage=0                 # first stage to run
stop_stage=100          # last stage to run
profile=default         # mini corpus size: tiny (tests, seconds) or default (the recipe)
seed=42                 # corpus seed: same seed, same corpus
conditions=default      # wild vs supervised speech: default (the seed recognises most wild speech),
                        # padded (default + silence around single utterances) or hard
tasks="asr ast"         # which tasks to run (asr: Mandarin ASR, ast: Spanish->English)
nj=2                    # parallel jobs for data preparation
speed_perturb=false     # add 0.9x/1.1x copies of train_sup (triples training time)
bpe_vocab_size=256      # BPE size for Spanish and English
data=data               # where manifests, features and lang dirs go
exp=exp                 # where models, decoding results and RESULTS.md go
model=xs                # model configuration (xs: a few million parameters, for CPUs)
train_cmd="python -m less.bin.train"  # training launcher; multi-GPU: "torchrun --nproc-per-node N -m less.bin.train"
seed_epochs=30          # epochs of the seed model S
student_epochs=8        # epochs of every student
student_init=teacher    # students start from their teacher (teacher) or from scratch (scratch;
                        # then give them the seed's 30 epochs: --student-epochs 30)
max_duration=60         # seconds of audio per training batch
lr_batches=2000         # Eden: batches of LR decay (small data: fewer than icefall's 7500)
lr_epochs=8             # Eden: epochs of LR decay
ref_duration=4          # Zipformer schedules count batch x max_duration / ref_duration: icefall's 600
                        # suits hundreds of hours; on minutes of audio the regularisation (layer
                        # skipping, dropout) would never anneal and CTC stays blank for ~20 epochs
avg=5                   # decode the average of the last N epochs (running averaged model)
train_workers=1         # data-loader workers while training
num_iters=1             # LESS iterations (the student of k teaches k+1)
systems="N L"           # students to train: N noisy student without LLM, L LESS
max_hypo_wer=0.1        # LESS filter threshold (the paper's)
pl_ratio=0              # hours of pseudo-labelled audio per supervised hour (0: all kept)
beam_size=10            # beam of pseudo-labelling and decoding
asr_llm_mode=correct    # Mandarin "LLM" of stage 7: correct (a correction LM rewrites the 1-best) or
                        # rescore (a text LM rescores the N-best); no Chinese instruct LLM ships offline
asr_lm_config=tiny      # size of that Mandarin LM (less.bin.train_text_lm --config)
asr_lm_epochs=2         # its training epochs over the text-only corpus
asr_lm_weight=0.5       # LM weight in rescore mode
ast_llm=builtin:smollm2 # English instruct LLM correcting translations
ast_llm_backend=hf      # hf (transformers, local) or openai (any OpenAI-compatible server)
ast_llm_base_url=http://127.0.0.1:8000/v1  # server of the openai backend (vLLM, Ollama, NIM...)
llm_batch_size=8        # LLM batch size
llm_threads=1           # torch threads of the LLM (1 is fastest on a busy small CPU)
ctc_scale=0.3           # CTC loss weight (icefall's 0.1 learns CTC too slowly for this little data)
aed_scale=0.7           # attention-decoder loss weight
num_threads=0           # torch CPU threads of training/decoding (0: all cores; 1 when sharing a CPU)
noise_aug=true          # mix the synthetic noise set into training batches (icefall's MUSAN)
volume_db=              # volume perturbation range in dB, e.g. -18,6 (Kaldi's 1/8..2); empty: off
train_opts=             # more less.bin.train flags for the seed and students, e.g. "--noise-snr=0,20"
ssl=none                # self-supervised pretraining of the encoder on unsup_wild before the seed:
                        # none, bestrq or birq; the seed and scratch students start from it
ssl_epochs=15           # pretraining epochs
ssl_opts=               # more less.bin.ssl_pretrain flags, e.g. "--enhanced-start-batches=3000"
abx_layers="embed 0 1 2 3 4 5 final"  # encoder layers whose ABX error stage 5 measures (with --ssl)
abx_opts=               # more less.bin.abx flags, e.g. "--units espeak-cmn"
. ../../../tools/path.sh
. "$LESS_ROOT/tools/parse_options.sh"
. "$LESS_ROOT/tools/less_stages.sh"
unsup_part=unsup_wild

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run.sh:${BASH_LINENO[0]}) $*"; }

lang_of_task() { [ "$1" = asr ] && echo zh || echo es; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: synthesize the mini corpus (profile $profile, seed $seed)"
  python -m less.local.mini.prepare --out-dir "$data" --profile "$profile" --seed "$seed" \
    --conditions "$conditions" --tasks "${tasks// /,}" --num-jobs "$nj"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "Stage 1: VAD-segment the unlabeled long recordings"
  for task in $tasks; do
    python -m less.bin.vad_segment \
      --recordings "$data/manifests/mini-${task}_recordings_unsup_wild.jsonl.gz" \
      --supervisions "$data/manifests/mini-${task}_supervisions_unsup_wild.jsonl.gz" \
      --language "$(lang_of_task "$task")" \
      --out-cuts "$data/manifests/mini-${task}_cuts_unsup_wild.jsonl.gz"
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "Stage 2: fbank features"
  for task in $tasks; do
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
  done
  # the noise set mixed into training batches (--noise-aug), like MUSAN in icefall recipes
  python -m less.bin.compute_fbank --recordings "$data/manifests/mini-noise_recordings.jsonl.gz" \
    --out-cuts "$data/fbank/mini-noise_cuts.jsonl.gz"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "Stage 3: token inventories"
  for task in $tasks; do
    sups="$data/manifests/mini-${task}_supervisions_train_sup.jsonl.gz"
    if [ "$task" = asr ]; then
      python -m less.bin.prepare_lang --type char --lang zh --out-dir "$data/lang_char" \
        --manifest "$sups" --extra-text "$data/text/mini-asr_text_only.zh.txt"
    else
      python -m less.bin.prepare_lang --type bpe --lang es --vocab-size "$bpe_vocab_size" \
        --out-dir "$data/lang_bpe_${bpe_vocab_size}_es" \
        --manifest "$sups" --extra-text "$data/text/mini-ast_text_only.es.txt"
      python -m less.bin.prepare_lang --type bpe --lang en --vocab-size "$bpe_vocab_size" \
        --field translation --out-dir "$data/lang_bpe_${bpe_vocab_size}_en" \
        --manifest "$sups" --extra-text "$data/text/mini-ast_text_only.en.txt"
    fi
  done
fi

lang_args() {  # token dirs of a task: CTC (transcript) [+ decoder (translation)]
  if [ "$1" = asr ]; then
    echo "--lang-dir $data/lang_char"
  else
    echo "--lang-dir $data/lang_bpe_${bpe_vocab_size}_es --decoder-lang-dir $data/lang_bpe_${bpe_vocab_size}_en"
  fi
}
train_args() {  # training flags of a task
  echo "$(lang_args "$1") --model $model --max-duration $max_duration --lr-batches $lr_batches" \
    "--lr-epochs $lr_epochs --warmup-batches 200 --ref-duration $ref_duration --num-workers $train_workers" \
    "--ctc-scale $ctc_scale --aed-scale $aed_scale --num-threads $num_threads" \
    "$([ "$noise_aug" = true ] && echo "--noise-cuts $data/fbank/mini-noise_cuts.jsonl.gz")" \
    "$([ -n "$volume_db" ] && echo "--volume-db=$volume_db")" "$train_opts"
}
ssl_args() {  # pretraining flags of a task (same model and batch schedule as training)
  echo "--model $model --max-duration $max_duration --lr-batches $lr_batches --lr-epochs $lr_epochs" \
    "--warmup-batches 200 --ref-duration $ref_duration --num-workers $train_workers --num-threads $num_threads" \
    "--valid-cuts $data/fbank/mini-${1}_cuts_dev.jsonl.gz"
}
decode_args() {  # decoding methods and test sets of a task
  local args="--num-threads $num_threads"
  if [ "$1" = asr ]; then
    args="$args --method ctc-greedy-search --method attention-decoder-rescoring --attention-scales 0.5,1.0,2.0"
  else
    args="$args --method attention-beam-search --method ctc-greedy-search"
  fi
  for split in dev test_clean test_wild; do
    args="$args --test $split=$data/fbank/mini-${1}_cuts_${split}.jsonl.gz"
  done
  echo "$args"
}
fbank() { echo "$data/fbank/mini-${1}_cuts_${2}.jsonl.gz"; }  # task split -> cut set

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  for task in $tasks; do
    if [ "$ssl" != none ]; then
      log "Stage 4: $ssl pretraining of the encoder on unsup_wild ($task)"
      # shellcheck disable=SC2046
      less_ssl_pretrain "$task" "$(fbank "$task" unsup_wild)" $(ssl_args "$task")
    fi
    log "Stage 4: train the seed model S (iteration 0, $task)"
    # shellcheck disable=SC2046
    $train_cmd --task "$task" --exp-dir "$exp/$task/iter0" --num-epochs "$seed_epochs" \
      --train-cuts "$(fbank "$task" train_sup)" --valid-cuts "$(fbank "$task" dev)" $(train_args "$task") \
      $(less_ssl_init "$task")
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "Stage 5: decode the seed model"
  for task in $tasks; do
    # shellcheck disable=SC2046
    less_decode "$exp/$task/iter0" "$seed_epochs" $(decode_args "$task")
    if [ "$ssl" != none ] && [ "$task" = asr ]; then
      for split in test_clean test_wild; do
        out="$exp/asr/ssl_$ssl/abx_${split}.json"
        [ -f "$out" ] && continue
        log "Stage 5: ABX of the $ssl encoder on $split"
        # shellcheck disable=SC2046
        python -m less.bin.abx --cuts "$(fbank asr "$split")" --alignments "$exp/asr/iter0/align_${split}.jsonl" \
          --align-checkpoint "$exp/asr/iter0/epoch-$seed_epochs.pt" --checkpoint "$(less_ssl_checkpoint asr)" \
          --num-threads "$num_threads" $(printf -- "--layer %s " fbank $abx_layers) $abx_opts --out "$out"
      done
    fi
  done
fi

for iter in $(seq 1 "$num_iters"); do
  for task in $tasks; do
    if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
      log "Stage 6: pseudo-label unsup_wild ($task, iteration $iter)"
      for system in $systems; do
        less_pseudo_label "$task" "$system" "$iter" "$(fbank "$task" unsup_wild)" --num-threads "$num_threads"
      done
    fi

    if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ] && [[ " $systems " == *" L "* ]]; then
      log "Stage 7: LLM correction of the pseudo-labels ($task, iteration $iter)"
      llm_io=(--in-cuts "$(less_llm_in "$task" "$iter")" --out-cuts "$(less_llm_out "$task" "$iter")"
              --batch-size "$llm_batch_size" --num-threads "$llm_threads")
      if [ "$task" = asr ]; then
        # No Chinese instruct LLM ships in any package: a small Mandarin LM trained on the
        # text-only corpus either rewrites the 1-best (a correction LM, trained on sentences
        # with simulated recognition errors) or rescores the teacher's N-best (real recipes
        # use an instruct LLM).
        if [ "$asr_llm_mode" = correct ]; then
          python -m less.bin.train_text_lm --text "$data/text/mini-asr_text_only.zh.txt" --lang zh \
            --objective correct --out-dir "$exp/asr/text_corrector" --config "$asr_lm_config" --epochs "$asr_lm_epochs"
          python -m less.bin.llm_correct "${llm_io[@]}" --task asr --lang zh --mode correct --backend hf \
            --model "$exp/asr/text_corrector" --prompt-template "$LESS_ROOT/less/llm/prompts/asr_zh_corrector.txt"
        else
          python -m less.bin.train_text_lm --text "$data/text/mini-asr_text_only.zh.txt" --lang zh \
            --out-dir "$exp/asr/text_lm" --config "$asr_lm_config" --epochs "$asr_lm_epochs"
          python -m less.bin.llm_correct "${llm_io[@]}" --task asr --lang zh --mode rescore --backend hf \
            --model "$exp/asr/text_lm" --lm-weight "$asr_lm_weight"
        fi
      else
        server=()
        [ "$ast_llm_backend" = openai ] && server=(--base-url "$ast_llm_base_url")
        python -m less.bin.llm_correct "${llm_io[@]}" --task ast --lang en --mode correct \
          --backend "$ast_llm_backend" --model "$ast_llm" "${server[@]}"
      fi
    fi

    if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
      log "Stage 8: filter the pseudo-labels ($task, iteration $iter)"
      lang=zh; [ "$task" = ast ] && lang=en
      for system in $systems; do
        less_filter "$task" "$system" "$iter" "$lang"
      done
    fi

    if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
      log "Stage 9: mix and train the students ($task, iteration $iter)"
      for system in $systems; do
        # shellcheck disable=SC2046
        less_train_student "$task" "$system" "$iter" "$(fbank "$task" train_sup)" "$(fbank "$task" dev)" \
          $(train_args "$task")
      done
    fi

    if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
      log "Stage 10: decode the students ($task, iteration $iter)"
      for system in $systems; do
        # shellcheck disable=SC2046
        less_decode "$exp/$task/$system/iter$iter" "$student_epochs" $(decode_args "$task")
      done
    fi
  done
done

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 5 ]; then
  log "Report: $exp/RESULTS.md"
  less_report
  cat "$exp/RESULTS.md"
fi
