#!/usr/bin/env bash
# LESS for ASR on any corpus you have as lhotse manifests: the output of one of lhotse's many
# recipes (`lhotse prepare <corpus> CORPUS_DIR MANIFEST_DIR`), or manifests of your own.
# Name the parts (lhotse's <prefix>_{recordings,supervisions}_<part>.jsonl.gz, or
# <prefix>_cuts_<part>.jsonl.gz) that are the supervised training set, the unlabeled set,
# the dev set and the test sets; the unlabeled parts' transcripts, if they have any, are
# hidden in custom["ref_text"] and used only to report the pseudo-labels' error.
#
#   ./run.sh --manifest-dir data/lhotse --prefix librispeech --lang en \
#     --train-parts train-clean-100 --unsup-parts "train-clean-360 train-other-500" \
#     --dev-part dev-clean --test-parts "test-clean test-other"
#
# egs/librispeech/less/run.sh is this recipe after lhotse's LibriSpeech preparer.
#
# Stages (each skips work already done and can be resumed after a kill):
#   0  check the parts and write them in the recipe's roles (less.local.lhotse_manifests):
#      data/manifests/<corpus>_{recordings,supervisions}_{train,dev,unsup,<test>}.jsonl.gz
#   1  VAD (Silero): --unsup-audio-dir (your own long recordings, added to the unlabeled set),
#      and with --unsup-vad true the unlabeled parts' recordings (their segments become the
#      hidden references, by time overlap); skipped without either
#   2  fbank (lilcom, --fbank-splits pieces, --nj in parallel; audio at other rates resampled)
#   3  the lang dir: characters (--token-type char, default for zh) or BPE (--bpe-vocab-size)
#   4-10 the LESS loop every recipe shares (tools/less_stages.sh less_loop): seed S, decoding;
#      per iteration and system: pseudo-labels, LLM correction (L), filter, student, decoding;
#      exp/RESULTS.md
#
# Usage: ./run.sh --manifest-dir DIR --train-parts P --dev-part P [--unsup-parts "P ..."] ... [--help]
set -euo pipefail
cd "$(dirname "$0")"

stage=0                      # first stage to run
stop_stage=100               # last stage to run
manifest_dir=                # directory of your lhotse manifests
prefix=                      # their corpus prefix (librispeech_recordings_<part>...; empty: recordings_<part>...)
train_parts=                 # supervised part(s), space-separated (combined)
unsup_parts=                 # unlabeled part(s), space-separated (combined; their text is hidden)
dev_part=                    # the labelled part that selects models
test_parts=                  # labelled test part(s), space-separated (each reported; "-" in a name becomes "_")
unsup_audio_dir=             # optional: dir of your own long recordings, VAD-segmented, added to the unlabeled set
unsup_vad=false              # VAD-segment the unlabeled parts' recordings (long audio) instead of using their segments
lang=en                      # language of the speech: zh, en or es (normaliser, CER for zh / WER, LLM prompt)
token_type=                  # char or bpe (default: char for zh, bpe otherwise)
bpe_vocab_size=500           # BPE vocabulary size (with the 3 specials)
corpus=corpus                # prefix of the recipe's own manifests and features
check_audio=20               # stage 0: open this many recordings per part to check rate and channels
min_utt_duration=1.0         # VAD: drop segments shorter than this (s)
max_utt_duration=20.0        # VAD: longest segment (s); unlabeled recordings without segments may not be longer
nj=4                         # parallel jobs of data preparation
fbank_splits=16              # pieces of each feature set (resumable, computed --nj at a time)
speed_perturb=false          # add 0.9x/1.1x copies of the supervised set (stage 2)
lang_extra_text=             # optional plain-text file (one sentence a line) for the tokenizer too
. ../../../tools/less_options.sh  # the options every recipe shares (data, exp, model, training, LESS loop, LLM; --help lists them)
student_epochs=20            # epochs of every student
train_opts=                  # more less.bin.train flags, e.g. "--base-lr 0.04 --lr-epochs 6"
whisper_language=            # its language (default: --lang)
llm_model=Qwen/Qwen2.5-7B-Instruct     # instruct model for --lang (served name, or hf: local dir / hub id)
llm_prompt_template=         # prompt template file (default: the packaged less/llm/prompts/asr_<lang>.txt)
. ../../../tools/path.sh
. "$LESS_ROOT/tools/parse_options.sh"
. "$LESS_ROOT/tools/less_stages.sh"
unsup_part=unsup_wild
task=asr
whisper_language=${whisper_language:-$lang}

case "$lang" in zh | en | es) ;; *) less_die "--lang must be zh, en or es, not '$lang'" ;; esac
[ -n "$token_type" ] || token_type=$([ "$lang" = zh ] && echo char || echo bpe)
case "$token_type" in char | bpe) ;; *) less_die "--token-type must be char or bpe, not '$token_type'" ;; esac
[ -z "$llm_prompt_template" ] && [ ! -f "$LESS_ROOT/less/llm/prompts/asr_$lang.txt" ] &&
  less_die "no packaged ASR prompt for --lang $lang: give --llm-prompt-template FILE"

manifests=$data/manifests
fbank=$data/fbank
lang_dir=$data/lang_$token_type
sup_train=$fbank/${corpus}_cuts_train.jsonl.gz
sup_valid=$fbank/${corpus}_cuts_dev.jsonl.gz
test_names=()
for part in $test_parts; do test_names+=("${part//[^A-Za-z0-9_]/_}"); done
unsup_sources=()
[ -n "$unsup_parts" ] && unsup_sources+=("$fbank/${corpus}_cuts_unsup.jsonl.gz")
[ -n "$unsup_audio_dir" ] && unsup_sources+=("$fbank/user_cuts_unsup.jsonl.gz")
case "${#unsup_sources[@]}" in
  0) unsup_cuts= ;;
  1) unsup_cuts=${unsup_sources[0]} ;;
  *) unsup_cuts=$fbank/unlabeled_cuts_${unsup_part}.jsonl.gz ;;
esac

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  less_log "Stage 0: check the manifests in $manifest_dir and write them in the recipe's roles"
  [ -n "$manifest_dir" ] || less_die "stage 0 needs --manifest-dir (the directory of your lhotse manifests)"
  [ -n "$train_parts" ] || less_die "stage 0 needs --train-parts (the supervised part(s))"
  [ -n "$dev_part" ] || less_die "stage 0 needs --dev-part (a labelled part that selects models)"
  python -m less.local.lhotse_manifests --manifest-dir "$manifest_dir" --prefix "$prefix" \
    --train "$train_parts" --dev "$dev_part" --test "$test_parts" --unsup "$unsup_parts" \
    --unsup-vad "$unsup_vad" --max-unsup-duration "$max_utt_duration" --check-audio "$check_audio" \
    --output-dir "$manifests" --corpus "$corpus"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -n "$unsup_audio_dir" ]; then
    less_log "Stage 1: VAD-segment the recordings below $unsup_audio_dir"
    less_vad_user_audio "$lang" "$manifests/user_cuts_unsup.jsonl.gz"
  fi
  if [ "$unsup_vad" = true ] && [ -n "$unsup_parts" ]; then
    less_log "Stage 1: VAD-segment the unlabeled recordings ($unsup_parts)"
    less_need 1 "$manifests/${corpus}_recordings_unsup.jsonl.gz"
    vad_args=(--language "$lang" --max-segment "$max_utt_duration" --min-segment "$min_utt_duration")
    refs=()
    [ -f "$manifests/${corpus}_supervisions_unsup.jsonl.gz" ] &&
      refs=(--supervisions "$manifests/${corpus}_supervisions_unsup.jsonl.gz")
    python -m less.bin.vad_segment --recordings "$manifests/${corpus}_recordings_unsup.jsonl.gz" \
      "${refs[@]}" "${vad_args[@]}" --out-cuts "$manifests/${corpus}_cuts_unsup_vad.jsonl.gz"
  fi
  if [ -z "$unsup_audio_dir" ] && [ "$unsup_vad" != true ]; then less_log "Stage 1: nothing to VAD-segment"; fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  less_log "Stage 2: fbank features"
  fbank_args=(--num-splits "$fbank_splits" --num-jobs "$nj")
  for split in train dev "${test_names[@]}"; do
    less_need 2 "$manifests/${corpus}_recordings_${split}.jsonl.gz" "$manifests/${corpus}_supervisions_${split}.jsonl.gz"
    sp=false
    [ "$split" = train ] && sp=$speed_perturb
    python -m less.bin.compute_fbank "${fbank_args[@]}" --trim-to-supervisions true \
      --recordings "$manifests/${corpus}_recordings_${split}.jsonl.gz" \
      --supervisions "$manifests/${corpus}_supervisions_${split}.jsonl.gz" \
      --require-text true --speed-perturb "$sp" --out-cuts "$fbank/${corpus}_cuts_${split}.jsonl.gz"
  done
  if [ -n "$unsup_parts" ]; then
    if [ "$unsup_vad" = true ]; then
      less_need 2 "$manifests/${corpus}_cuts_unsup_vad.jsonl.gz"
      input=(--in-cuts "$manifests/${corpus}_cuts_unsup_vad.jsonl.gz")
    elif [ -f "$manifests/${corpus}_supervisions_unsup.jsonl.gz" ]; then
      input=(--recordings "$manifests/${corpus}_recordings_unsup.jsonl.gz" --trim-to-supervisions true
             --supervisions "$manifests/${corpus}_supervisions_unsup.jsonl.gz")
    else
      less_need 2 "$manifests/${corpus}_recordings_unsup.jsonl.gz"
      input=(--recordings "$manifests/${corpus}_recordings_unsup.jsonl.gz")
    fi
    python -m less.bin.compute_fbank "${fbank_args[@]}" "${input[@]}" --require-text false \
      --out-cuts "$fbank/${corpus}_cuts_unsup.jsonl.gz"
  fi
  if [ -n "$unsup_audio_dir" ]; then
    less_user_audio_features "$manifests/user_cuts_unsup.jsonl.gz" "$fbank/user_cuts_unsup.jsonl.gz" \
      "${fbank_args[@]}"
  fi
  if [ "${#unsup_sources[@]}" -gt 1 ]; then less_combine_cuts "$unsup_cuts" "${unsup_sources[@]}"; fi
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  less_log "Stage 3: $lang_dir"
  less_need 3 "$manifests/${corpus}_supervisions_train.jsonl.gz"
  extra=()
  [ -n "$lang_extra_text" ] && extra=(--extra-text "$lang_extra_text")
  [ "$token_type" = bpe ] && extra+=(--vocab-size "$bpe_vocab_size")
  python -m less.bin.prepare_lang --type "$token_type" --lang "$lang" --out-dir "$lang_dir" \
    --manifest "$manifests/${corpus}_supervisions_train.jsonl.gz" "${extra[@]}"
fi

less_model_args --lang-dir "$lang_dir"
decode_args=(--num-threads "$num_threads" --method ctc-greedy-search --method attention-decoder-rescoring
             --attention-scales "0.5,1.0,2.0" --test "dev=$sup_valid")
for name in "${test_names[@]}"; do
  decode_args+=(--test "$name=$fbank/${corpus}_cuts_${name}.jsonl.gz")
done

less_loop "$task" "$lang" "$sup_train" "$sup_valid" "$unsup_cuts" "$lang_dir/tokens.txt"
