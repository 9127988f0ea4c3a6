#!/usr/bin/env bash
# LESS for Spanish->English speech translation (AST). Supervised set: Fisher Spanish
# (LDC2010S01 speech, LDC2010T04 transcripts) and Callhome Spanish (LDC96S35, LDC96T17)
# with the English translations and splits of the fisher-callhome-corpus release.
# Unlabeled set: YOUR OWN long Spanish recordings (--unsup-audio-dir), VAD-segmented in
# stage 1. Fisher/Callhome are entirely labelled, so without --unsup-audio-dir stages 6-10
# have nothing to pseudo-label: a full run then stops after the seed model (stages 0-5)
# and says so; asking for --stage 6 or later is an error.
#
# Stages (each skips work already done and can be resumed after a kill):
#   0  .sph -> FLAC (less.local.sph; shorten-compressed files stop with how to decompress
#      them), then manifests: fisher_{train,dev,dev2,test}, callhome_{train,devtest,evltest};
#      fisher dev/dev2/test carry 4 English references
#   1  VAD-segment --unsup-audio-dir (Silero VAD, <= --max-utt-duration s)
#   2  fbank (lilcom), one cut per segment on its speaker's channel, 8 kHz resampled to
#      16 kHz; train_sup = fisher_train + callhome_train with 0.9x/1.1x speed perturbation.
#      Evaluation sets keep segments whose Spanish transcript is empty (their English
#      references are part of the standard test sets), so they are not --require-text;
#      the validation set of training (fisher_dev minus those segments: the CTC loss
#      needs a transcript) is fisher-callhome_cuts_valid.
#   3  data/lang_bpe_<N>_es (CTC auxiliary, Spanish) and data/lang_bpe_<N>_en (decoder)
#   4  train the seed AST model S (iteration 0) on train_sup            exp/ast/iter0
#      (with --ssl bestrq|birq: after pretraining its encoder on the unlabeled set,
#      exp/<task>/ssl_<ssl>; the scratch students start from that encoder too)
#   5  decode fisher dev/dev2/test, callhome devtest/evltest with attention-beam-search:
#      BLEU (sacrebleu, all references, lowercased, punctuation removed, as ESPnet reports).
#      The Spanish CTC output is not scored: evaluation sets have empty Spanish transcripts.
#   for each iteration k = 1..num_iters and each system in $systems (L: LESS, N: no LLM):
#   6  pseudo-label the unlabeled set: English translation + Spanish transcript (CTC target)
#   7  L only: LLM correction of the English pseudo-translations (English prompt)
#   8  filter: L keeps hypo_wer(teacher, LLM) <= max_hypo_wer; N keeps all teacher labels
#   9  mix train_sup + kept cuts, train the student                exp/ast/<system>/iter<k>
#  10  decode the student; after the loop: exp/RESULTS.md
#
# Usage: ./run.sh --fisher-speech-dir DIR --fisher-transcript-dir DIR --callhome-speech-dir DIR \
#          --callhome-transcript-dir DIR --translation-dir DIR [--unsup-audio-dir DIR] [--help]
set -euo pipefail
cd "$(dirname "$0")"

stage=0                      # first stage to run
stop_stage=100               # last stage to run
fisher_speech_dir=           # LDC2010S01 Fisher Spanish speech (searched for *.sph)
fisher_transcript_dir=       # LDC2010T04 Fisher Spanish transcripts (searched for *.tdf)
callhome_speech_dir=         # LDC96S35 Callhome Spanish speech (searched for *.sph)
callhome_transcript_dir=     # LDC96T17 Callhome Spanish transcripts (searched for *.txt)
translation_dir=             # clone of github.com/joshua-decoder/fisher-callhome-corpus (mapping/, corpus/ldc/)
flac_dir=                    # where stage 0 writes FLAC copies of the .sph files (empty: <data>/flac)
unsup_audio_dir=             # dir of your own long unlabeled Spanish recordings (wav/flac/ogg/opus/mp3/m4a): the LESS unlabeled set
unsup_channel=0              # channel of multi-channel unlabeled recordings that is segmented and labelled
min_utt_duration=0.5         # drop training segments/unlabeled segments shorter than this (s)
max_utt_duration=20.0        # drop training segments/unlabeled segments longer than this (s); longest VAD segment
nj=4                         # parallel jobs of data preparation
fbank_splits=16              # pieces of each feature set (resumable, computed --nj at a time)
speed_perturb=true           # add 0.9x/1.1x copies of train_sup (stage 2)
bpe_vocab_size=1000          # BPE vocabulary size of Spanish and English (data/lang_bpe_<N>_{es,en})
. ../../../tools/less_options.sh  # the options every recipe shares (data, exp, model, training, LESS loop, LLM; --help lists them)
student_epochs=30            # epochs of every student
train_opts=                  # more less.bin.train flags, e.g. "--ctc-scale 0.3 --aed-scale 0.7"
whisper_language=es          # language of the unlabeled speech for the Whisper teacher
llm_model=meta-llama/Llama-3.1-8B-Instruct   # English instruct model (served name, or hf: local dir / hub id)
llm_prompt_template=         # prompt template file (default: the packaged English less/llm/prompts/ast_en.txt)
. ../../../tools/path.sh
. "$LESS_ROOT/tools/parse_options.sh"
. "$LESS_ROOT/tools/less_stages.sh"
unsup_part=unsup_wild
task=ast


corpus=fisher-callhome
manifests=$data/manifests
fbank=$data/fbank
flac_dir=${flac_dir:-$data/flac}
lang_es=$data/lang_bpe_${bpe_vocab_size}_es
lang_en=$data/lang_bpe_${bpe_vocab_size}_en
train_splits="fisher_train callhome_train"
eval_splits="fisher_dev fisher_dev2 fisher_test callhome_devtest callhome_evltest"
sup_train=$fbank/${corpus}_cuts_train_sup.jsonl.gz
valid_split=fisher_dev
sup_valid=$fbank/${corpus}_cuts_valid.jsonl.gz
vad_cuts=$manifests/user_cuts_${unsup_part}.jsonl.gz
unsup_cuts=$fbank/user_cuts_${unsup_part}.jsonl.gz

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  less_log "Stage 0: .sph -> FLAC in $flac_dir, then the Fisher/Callhome manifests"
  for option in fisher_speech_dir fisher_transcript_dir callhome_speech_dir callhome_transcript_dir translation_dir; do
    [ -n "${!option}" ] || less_die "stage 0 needs --${option//_/-} (see --help)"
  done
  python -m less.local.sph --in-dir "$fisher_speech_dir" --out-dir "$flac_dir/fisher" --num-jobs "$nj"
  python -m less.local.sph --in-dir "$callhome_speech_dir" --out-dir "$flac_dir/callhome" --num-jobs "$nj"
  python -m less.local.fisher_callhome --output-dir "$manifests" --translation-dir "$translation_dir" \
    --fisher-audio-dir "$flac_dir/fisher" --fisher-transcript-dir "$fisher_transcript_dir" \
    --callhome-audio-dir "$flac_dir/callhome" --callhome-transcript-dir "$callhome_transcript_dir" \
    --min-duration "$min_utt_duration" --max-duration "$max_utt_duration"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -n "$unsup_audio_dir" ]; then
    less_log "Stage 1: VAD-segment the recordings below $unsup_audio_dir (channel $unsup_channel)"
    less_vad_user_audio es "$vad_cuts" --channel "$unsup_channel"
  else
    less_log "Stage 1: no --unsup-audio-dir: nothing to segment (stages 6-10 will have nothing to pseudo-label)"
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  less_log "Stage 2: fbank features"
  fbank_args=(--num-splits "$fbank_splits" --num-jobs "$nj" --trim-to-supervisions true)
  for split in $train_splits $eval_splits; do
    less_need 2 "$manifests/${corpus}_recordings_${split}.jsonl.gz" "$manifests/${corpus}_supervisions_${split}.jsonl.gz"
    sp=false
    require_text=false  # evaluation sets keep segments with an empty Spanish transcript
    case " $train_splits " in *" $split "*) sp=$speed_perturb require_text=true ;; esac
    python -m less.bin.compute_fbank "${fbank_args[@]}" \
      --recordings "$manifests/${corpus}_recordings_${split}.jsonl.gz" \
      --supervisions "$manifests/${corpus}_supervisions_${split}.jsonl.gz" \
      --require-text "$require_text" --speed-perturb "$sp" --out-cuts "$fbank/${corpus}_cuts_${split}.jsonl.gz"
  done
  python -m less.bin.compute_fbank "${fbank_args[@]}" --skip-empty-text true \
    --recordings "$manifests/${corpus}_recordings_${valid_split}.jsonl.gz" \
    --supervisions "$manifests/${corpus}_supervisions_${valid_split}.jsonl.gz" --out-cuts "$sup_valid"
  if [ ! -f "$sup_train" ]; then
    less_log "Stage 2: train_sup = $train_splits"
    # shellcheck disable=SC2046
    lhotse combine $(for split in $train_splits; do echo "$fbank/${corpus}_cuts_${split}.jsonl.gz"; done) \
      "${sup_train%.jsonl.gz}.tmp.jsonl.gz"
    mv "${sup_train%.jsonl.gz}.tmp.jsonl.gz" "$sup_train"
  fi
  if [ -n "$unsup_audio_dir" ]; then
    less_user_audio_features "$vad_cuts" "$unsup_cuts" --num-splits "$fbank_splits" --num-jobs "$nj"
  fi
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  less_log "Stage 3: $lang_es (CTC) and $lang_en (decoder)"
  sups=()
  for split in $train_splits; do
    less_need 3 "$manifests/${corpus}_supervisions_${split}.jsonl.gz"
    sups+=(--manifest "$manifests/${corpus}_supervisions_${split}.jsonl.gz")
  done
  python -m less.bin.prepare_lang --type bpe --lang es --vocab-size "$bpe_vocab_size" --out-dir "$lang_es" "${sups[@]}"
  python -m less.bin.prepare_lang --type bpe --lang en --vocab-size "$bpe_vocab_size" --field translation \
    --out-dir "$lang_en" "${sups[@]}"
fi

less_model_args --lang-dir "$lang_es" --decoder-lang-dir "$lang_en"
decode_args=(--num-threads "$num_threads" --method attention-beam-search)
for split in $eval_splits; do
  decode_args+=(--test "$split=$fbank/${corpus}_cuts_${split}.jsonl.gz")
done

if [ -z "$unsup_audio_dir" ] && [ "$stage" -le 10 ] && [ "$stop_stage" -ge 6 ]; then
  message="stages 6-10: nothing to pseudo-label: no --unsup-audio-dir was given. LESS needs unlabeled
  Spanish audio (Fisher and Callhome are entirely labelled): rerun with --stage 1 --unsup-audio-dir DIR
  (long recordings of your own, any format lhotse reads) to run the LESS iterations."
  [ "$stage" -ge 6 ] && less_die "$message"
  less_log "$message"
  unsup_cuts=  # less_loop stops after the seed model
fi

# stages 4-10: the LESS loop every recipe shares (tools/less_stages.sh)
less_loop "$task" en "$sup_train" "$sup_valid" "$unsup_cuts" "$lang_es/tokens.txt" "$lang_en/tokens.txt"
