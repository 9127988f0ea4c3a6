#!/usr/bin/env bash
# LESS for Mandarin ASR: AISHELL-1 (150 h of read speech) is the supervised set, a
# WenetSpeech training subset (in-the-wild YouTube/podcast audio) the unlabeled set whose
# corpus labels are hidden (custom["ref_text"]: used only to measure pseudo-label error).
# Your own long recordings (--unsup-audio-dir) can be VAD-segmented and ADDED to the
# unlabeled set, or used INSTEAD of WenetSpeech's (--use-wenetspeech-unsup false; the
# WenetSpeech test sets are still needed for stage 5).
#
# Why subset M by default: 1000 h of unlabeled audio is ~7x AISHELL's 150 h, the regime
# where pseudo-labels pay off, while one LESS iteration (labelling, roughly a million LLM
# requests, a student on up to ~1450 h) stays within 1-2 GPU-days (README: estimates);
# L (10000 h) makes every iteration ~6x longer and ~10M LLM requests.
#
# Stages (each skips work already done and can be resumed after a kill):
#   0  manifests: AISHELL-1 train/dev/test; WenetSpeech <subset> (unlabeled), DEV,
#      TEST_NET, TEST_MEETING (segments tagged <SIL>/<MUSIC>/<NOISE>/<OTHER> dropped)
#   1  VAD-segment --unsup-audio-dir (Silero VAD, <= --max-utt-duration s); skipped without it
#   2  fbank (lilcom, --fbank-splits pieces, --nj in parallel): AISHELL train with 0.9x/1.1x
#      speed perturbation; WenetSpeech sets trimmed to their segments; the unlabeled set
#   3  data/lang_char from the AISHELL train transcripts (the normaliser of scoring)
#   4  train the seed model S (iteration 0) on AISHELL train          exp/asr/iter0
#      (with --ssl bestrq|birq: after pretraining its encoder on the unlabeled set,
#      exp/<task>/ssl_<ssl>; the scratch students start from that encoder too)
#   5  decode AISHELL test, TEST_NET, TEST_MEETING (CER)
#   for each iteration k = 1..num_iters and each system in $systems (L: LESS, N: no LLM):
#   6  pseudo-label the unlabeled set with the teacher (S for k = 1, else the student of k-1)
#   7  L only: LLM correction of the pseudo-labels (Chinese prompt, OpenAI-compatible server)
#   8  filter: L keeps hypo_wer(teacher, LLM) <= max_hypo_wer; N keeps all teacher labels
#   9  mix AISHELL train + kept cuts, train the student         exp/asr/<system>/iter<k>
#  10  decode the student; after the loop: exp/RESULTS.md
#
# Usage: ./run.sh --aishell-dir DIR --wenetspeech-dir DIR [--stage N] [--stop-stage M] [--help]
set -euo pipefail
cd "$(dirname "$0")"

stage=0                      # first stage to run
stop_stage=100               # last stage to run
aishell_dir=                 # AISHELL-1: the directory holding data_aishell/{wav,transcript} (OpenSLR 33)
wenetspeech_dir=             # WenetSpeech: the directory holding WenetSpeech.json and audio/
wenetspeech_subset=M         # WenetSpeech training subset used as unlabeled audio: S (100 h), M (1000 h), L (10000 h)
use_wenetspeech_unsup=true   # the WenetSpeech subset is (part of) the unlabeled set; false: only --unsup-audio-dir
unsup_audio_dir=             # optional: dir of your own long Mandarin recordings (wav/flac/ogg/opus/mp3/m4a), VAD-segmented, added
min_utt_duration=1.0         # drop training utterances/unlabeled segments shorter than this (s)
max_utt_duration=20.0        # drop training utterances/unlabeled segments longer than this (s); longest VAD segment
nj=4                         # parallel jobs of data preparation
fbank_splits=16              # pieces of each feature set (resumable, computed --nj at a time)
speed_perturb=true           # add 0.9x/1.1x copies of AISHELL train (stage 2)
lang_extra_text=             # optional plain-text file (one sentence a line) whose characters join data/lang_char
. ../../../tools/less_options.sh  # the options every recipe shares (data, exp, model, training, LESS loop, LLM; --help lists them)
student_epochs=20            # epochs of every student
train_opts=                  # more less.bin.train flags, e.g. "--base-lr 0.04 --lr-epochs 6"
whisper_language=zh          # language of the unlabeled speech for the Whisper teacher
llm_model=Qwen/Qwen2.5-7B-Instruct     # Chinese instruct model (served name, or hf: local dir / hub id)
llm_prompt_template=         # prompt template file (default: the packaged Chinese less/llm/prompts/asr_zh.txt)
. ../../../tools/path.sh
. "$LESS_ROOT/tools/parse_options.sh"
. "$LESS_ROOT/tools/less_stages.sh"
unsup_part=unsup_wild
task=asr


case "$wenetspeech_subset" in S | M | L) ;; *) less_die "--wenetspeech-subset must be S, M or L, not '$wenetspeech_subset'" ;; esac
[ "$use_wenetspeech_unsup" = true ] || [ -n "$unsup_audio_dir" ] ||
  less_die "--use-wenetspeech-unsup false needs --unsup-audio-dir: there would be no unlabeled audio"

manifests=$data/manifests
fbank=$data/fbank
lang_dir=$data/lang_char
sup_train=$fbank/aishell_cuts_train.jsonl.gz
sup_valid=$fbank/aishell_cuts_dev.jsonl.gz
vad_cuts=$manifests/user_cuts_${unsup_part}.jsonl.gz
unsup_sources=()
[ "$use_wenetspeech_unsup" = true ] && unsup_sources+=("$fbank/wenetspeech_cuts_${wenetspeech_subset}.jsonl.gz")
[ -n "$unsup_audio_dir" ] && unsup_sources+=("$fbank/user_cuts_${unsup_part}.jsonl.gz")
if [ "${#unsup_sources[@]}" -eq 1 ]; then
  unsup_cuts=${unsup_sources[0]}
else
  unsup_cuts=$fbank/unlabeled_cuts_${unsup_part}.jsonl.gz
fi
test_sets="aishell_test=$fbank/aishell_cuts_test.jsonl.gz"
for part in TEST_NET TEST_MEETING; do
  test_sets="$test_sets ${part}=$fbank/wenetspeech_cuts_${part}.jsonl.gz"
done

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  less_log "Stage 0: manifests of AISHELL-1 and WenetSpeech (subset $wenetspeech_subset as unlabeled audio)"
  [ -n "$aishell_dir" ] || less_die "stage 0 needs --aishell-dir (the directory holding data_aishell/)"
  [ -n "$wenetspeech_dir" ] || less_die "stage 0 needs --wenetspeech-dir (the directory holding WenetSpeech.json)"
  python -m less.local.aishell --corpus-dir "$aishell_dir" --output-dir "$manifests" \
    --min-duration "$min_utt_duration" --max-duration "$max_utt_duration"
  python -m less.local.wenetspeech --corpus-dir "$wenetspeech_dir" --output-dir "$manifests" \
    --subset "$wenetspeech_subset" --min-duration "$min_utt_duration" --max-duration "$max_utt_duration" \
    --num-jobs "$nj"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -n "$unsup_audio_dir" ]; then
    less_log "Stage 1: VAD-segment the recordings below $unsup_audio_dir"
    less_vad_user_audio zh "$vad_cuts"
  else
    less_log "Stage 1: no --unsup-audio-dir: nothing to segment (the unlabeled set is WenetSpeech $wenetspeech_subset)"
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  less_log "Stage 2: fbank features"
  fbank_args=(--num-splits "$fbank_splits" --num-jobs "$nj")
  for split in train dev test; do
    less_need 2 "$manifests/aishell_recordings_${split}.jsonl.gz" "$manifests/aishell_supervisions_${split}.jsonl.gz"
    sp=false
    [ "$split" = train ] && sp=$speed_perturb
    python -m less.bin.compute_fbank "${fbank_args[@]}" \
      --recordings "$manifests/aishell_recordings_${split}.jsonl.gz" \
      --supervisions "$manifests/aishell_supervisions_${split}.jsonl.gz" \
      --require-text true --speed-perturb "$sp" --out-cuts "$fbank/aishell_cuts_${split}.jsonl.gz"
  done
  # WenetSpeech recordings are long (whole videos/podcasts): one cut per labelled segment.
  parts="DEV TEST_NET TEST_MEETING"
  [ "$use_wenetspeech_unsup" = true ] && parts="$wenetspeech_subset $parts"
  for part in $parts; do
    less_need 2 "$manifests/wenetspeech_recordings_${part}.jsonl.gz" "$manifests/wenetspeech_supervisions_${part}.jsonl.gz"
    require_text=true
    [ "$part" = "$wenetspeech_subset" ] && require_text=false  # unlabeled: text only in custom["ref_text"]
    python -m less.bin.compute_fbank "${fbank_args[@]}" --trim-to-supervisions true \
      --recordings "$manifests/wenetspeech_recordings_${part}.jsonl.gz" \
      --supervisions "$manifests/wenetspeech_supervisions_${part}.jsonl.gz" \
      --require-text "$require_text" --out-cuts "$fbank/wenetspeech_cuts_${part}.jsonl.gz"
  done
  if [ -n "$unsup_audio_dir" ]; then
    less_user_audio_features "$vad_cuts" "$fbank/user_cuts_${unsup_part}.jsonl.gz" "${fbank_args[@]}"
  fi
  if [ "${#unsup_sources[@]}" -gt 1 ]; then less_combine_cuts "$unsup_cuts" "${unsup_sources[@]}"; fi
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  less_log "Stage 3: $lang_dir"
  less_need 3 "$manifests/aishell_supervisions_train.jsonl.gz"
  extra=()
  [ -n "$lang_extra_text" ] && extra=(--extra-text "$lang_extra_text")
  python -m less.bin.prepare_lang --type char --lang zh --out-dir "$lang_dir" \
    --manifest "$manifests/aishell_supervisions_train.jsonl.gz" "${extra[@]}"
fi

less_model_args --lang-dir "$lang_dir"
decode_args=(--num-threads "$num_threads" --method ctc-greedy-search --method attention-decoder-rescoring
             --attention-scales "0.5,1.0,2.0")
for spec in $test_sets; do
  decode_args+=(--test "$spec")
done

# stages 4-10: the LESS loop every recipe shares (tools/less_stages.sh)
less_loop "$task" zh "$sup_train" "$sup_valid" "$unsup_cuts" "$lang_dir/tokens.txt"
