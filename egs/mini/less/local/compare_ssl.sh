#!/usr/bin/env bash
# The SSL table of RESULTS.md: seed models (Mandarin) from scratch and from pretrained
# encoders, over training seeds, paired by seed. One recipe run per arm and seed, stages 4-5
# (pretraining, seed model, decoding, ABX), on the corpus that stages 0-3 made in data/.
#
#   local/compare_ssl.sh --arms "scratch bestrq speechlm speechlm_notext" --seeds "1 2 3"
#
# Arms: scratch (--ssl none), bestrq, birq, birq_ema (momentum labels), birq_paper (the paper's
# balance: enhanced 0.1, anchor 2.4, temperature 0.5, labels from stack 3), speechlm (SpeechLM-P),
# speechlm_notext (the same without UCTC: --text-weight 0, separates units from text), and
# <arm>_gentle for any of those but scratch: <arm>'s pretrained encoder of the same seed,
# fine-tuned with --gentle-opts (its pretraining is reused, not repeated: run <arm> first).
# SpeechLM's unit tokenizer of seed s is the scratch arm's seed model of seed s (run scratch
# first; it is reused, not retrained). scratch_student is SpeechLM's control with the same
# information: that seed pseudo-labels unsup_wild (stage 6) and a student from scratch learns
# from train_sup and its labels for --seed-epochs (stages 6-10, systems --student-systems, one
# iteration; its report rows are system N (and L) at iteration 1). Runs skip finished work,
# so rerunning continues.
set -euo pipefail
cd "$(dirname "$0")/.."

arms="scratch bestrq speechlm speechlm_notext"
seeds="1 2 3"
out=exp_ssl             # one exp dir per arm and seed: $out/<arm>_s<seed>
ssl_epochs=10           # pretraining epochs
seed_epochs=14          # epochs of every seed model (run.sh's default)
num_threads=1
jobs=1                  # runs at a time (each one thread; 2 on a 2-core machine)
run_opts=               # more run.sh flags for every run
gentle_opts="--encoder-lr-scale 0.1 --freeze-encoder-batches 200"  # --ssl-finetune-opts of *_gentle
student_systems=N       # scratch_student's systems (N: the seed's labels; "N L": also LESS's)
# shellcheck source=../../../../tools/parse_options.sh
. ../../../tools/parse_options.sh
# shellcheck source=../../../../tools/path.sh
. ../../../tools/path.sh  # the environment of the final report (run.sh sources it for each run)
# shellcheck source=../../../../tools/less_stages.sh
. ../../../tools/less_stages.sh  # less_wait_first

for arm in $arms; do
  for s in $seeds; do
    exp="$out/${arm}_s$s"
    opts=(--tasks asr --stage 4 --stop-stage 5 --exp "$exp" --train-seed "$s" --num-threads "$num_threads"
          --ssl-epochs "$ssl_epochs" --seed-epochs "$seed_epochs")
    base=${arm%_gentle} ssl_opts=  # base: the arm whose pretraining a *_gentle arm fine-tunes
    case "$base" in
      scratch) method=none ;;
      bestrq | birq) method=$base ssl_opts="--quantizer-seed $s" ;;
      birq_ema) method=birq ssl_opts="--quantizer-seed $s --enhanced-label-source ema" ;;
      birq_paper) method=birq ssl_opts="--quantizer-seed $s --enhanced-weight 0.1 --anchor-weight 2.4
                  --gumbel-temp-start 0.5 --gumbel-temp-end 0.5 --enhanced-stack 3" ;;
      scratch_student)
        method=none
        teacher="$out/scratch_s$s/asr/iter0"
        [ -f "$teacher/epoch-$seed_epochs.pt" ] || { echo "compare_ssl.sh: run the scratch arm of seed $s first (the teacher)" >&2; exit 1; }
        mkdir -p "$exp/asr"
        [ -e "$exp/asr/iter0" ] || ln -s "$(realpath "$teacher")" "$exp/asr/iter0"
        # later flags win: stages 6-10 instead of 4-5, its own pseudo-label dir (runs overlap)
        opts+=(--stage 6 --stop-stage 10 --systems "$student_systems" --num-iters 1 --student-init scratch
               --student-epochs "$seed_epochs" --pl-dir "$exp/pl")
        ;;
      speechlm | speechlm_notext)
        method=speechlm
        tokenizer="$out/scratch_s$s/asr/iter0/epoch-$seed_epochs.pt"
        [ -f "$tokenizer" ] || { echo "compare_ssl.sh: run the scratch arm of seed $s first (the unit tokenizer)" >&2; exit 1; }
        opts+=(--speechlm-tokenizer "$tokenizer")
        [ "$base" = speechlm_notext ] && ssl_opts="--text-weight 0"
        ;;
      *) echo "compare_ssl.sh: unknown arm '$arm'" >&2; exit 1 ;;
    esac
    opts+=(--ssl "$method")
    [ -z "$ssl_opts" ] || opts+=(--ssl-opts "$ssl_opts")
    if [ "$base" != "$arm" ]; then
      [ "$method" != none ] || { echo "compare_ssl.sh: scratch has no pretrained encoder to fine-tune gently" >&2; exit 1; }
      pretrained="$out/${base}_s$s/asr/ssl_$method"
      [ -f "$pretrained/epoch-$ssl_epochs.pt" ] || { echo "compare_ssl.sh: run the $base arm of seed $s first (its pretrained encoder)" >&2; exit 1; }
      mkdir -p "$exp/asr"
      [ -e "$exp/asr/ssl_$method" ] || ln -s "$(realpath "$pretrained")" "$exp/asr/ssl_$method"
      opts+=(--ssl-finetune-opts "$gentle_opts")
    fi
    echo "$(date '+%F %T') compare_ssl.sh: $arm, seed $s -> $exp (log: $exp.log)"
    mkdir -p "$out"
    # shellcheck disable=SC2086  # run_opts holds flags
    ./run.sh "${opts[@]}" $run_opts >"$exp.log" 2>&1 &
    less_pids+=("$!") less_names+=("$exp")
    while [ "${#less_pids[@]}" -ge "$jobs" ]; do less_wait_first; done
  done
  # SpeechLM's tokenizers are the scratch arm's seed models, <arm>_gentle starts from <arm>'s
  # pretraining: such arms finish before anything else starts; the other arms overlap (no core
  # idles while one seed finishes)
  if [ "$arm" = scratch ] || [[ " $arms " == *" ${arm}_gentle "* ]]; then
    while [ "${#less_pids[@]}" -gt 0 ]; do less_wait_first; done
  fi
done
while [ "${#less_pids[@]}" -gt 0 ]; do less_wait_first; done

groups=()
for arm in $arms; do
  runs=""
  for s in $seeds; do runs="${runs:+$runs,}$out/${arm}_s$s"; done
  groups+=(--group "$arm=$runs")
done
python -m less.bin.report --task asr --out "$out/RESULTS.md" "${groups[@]}"
cat "$out/RESULTS.md"
