#!/usr/bin/env bash
# LESS on the embedded mini corpus: a synthetic bilingual corpus built on this machine
# (espeak-ng voices, noise, reverberation), two tasks:
#   asr  Mandarin speech -> Mandarin text         (corpus mini-asr)
#   ast  Spanish speech  -> English translation   (corpus mini-ast)
#
# Stages (each skips work already done and can be resumed after a kill):
#   0  synthesize the corpus: manifests in data/manifests, audio in data/audio
#   1  VAD-segment the long unlabeled recordings (Silero VAD)
#   2  fbank features (lilcom) for every split
#   3  token inventories: data/lang_char (zh), data/lang_bpe_<N>_{es,en}
#
# Usage: ./run.sh [--stage N] [--stop-stage M] [--profile tiny|default] [--help]
set -euo pipefail
cd "$(dirname "$0")"

stage=0                 # first stage to run
stop_stage=100          # last stage to run
profile=default         # mini corpus size: tiny (tests, seconds) or default (the recipe)
seed=42                 # corpus seed: same seed, same corpus
tasks="asr ast"         # which tasks to run (asr: Mandarin ASR, ast: Spanish->English)
nj=2                    # parallel jobs for data preparation
speed_perturb=false     # add 0.9x/1.1x copies of train_sup (triples training time)
bpe_vocab_size=256      # BPE size for Spanish and English
data=data               # where manifests, features and lang dirs go
. ../../../tools/path.sh
. "$LESS_ROOT/tools/parse_options.sh"

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run.sh:${BASH_LINENO[0]}) $*"; }

lang_of_task() { [ "$1" = asr ] && echo zh || echo es; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: synthesize the mini corpus (profile $profile, seed $seed)"
  python -m less.local.mini.prepare --out-dir "$data" --profile "$profile" --seed "$seed" \
    --tasks "${tasks// /,}" --num-jobs "$nj"
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

if [ "$stop_stage" -ge 4 ]; then
  log "Stages 0-3 are done. Stages 4-10 (seed model, decoding, the LESS loop) are not part of"
  log "this version yet: the run stops here. See README.md for the status of each stage."
fi
