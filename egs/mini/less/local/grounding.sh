#!/usr/bin/env bash
# Visual grounding for a bilingual encoder (seed paper arXiv 2509.17523): BEST-RQ encoders
# pretrained on Mandarin alone (zh) or on Mandarin + Spanish at equal hours (zhes), each
# without and with speech-image grounding (_vg: scene images of the sentences, InfoNCE on
# every --visual-every-th step), over training seeds; phone ABX per language on test_clean
# from espeak-ng's exact phone times; the bilingual gap (ABX_bi - ABX_mono) / ABX_mono with
# and without grounding. Needs the corpus of stages 0-3 in data/ (./run.sh --stop-stage 3).
#
#   local/grounding.sh --seeds "1 2 3" --jobs 2
#   local/grounding.sh --encoders "zh zhes" --seeds 1     # the pilot: is there an audio-only gap?
#
# Data at equal hours: zh pretrains on all of Mandarin unsup_wild and pairs with all of its
# train_sup; zhes on half the Mandarin hours from each language's unsup_wild and train_sup
# (whole recordings, less.bin.subset_cuts). The Mandarin and Spanish corpora are different
# sentences, so the two languages share the scenes' vocabulary (objects, colours, counts,
# places), not the images themselves. Runs skip finished work, so rerunning continues.
set -euo pipefail
cd "$(dirname "$0")/.."

encoders="zh zh_vg zhes zhes_vg"
seeds="1 2 3"
out=exp_vg               # one exp dir per encoder and seed: $out/<encoder>_s<seed>
data=data
scenes=                  # scene images (default: $data/scenes)
ssl_epochs=10
model=xs
max_duration=60
visual_weight=1.0
visual_every=2           # a paired batch on every 2nd step
abx_layers="embed 1 3 final"
abx_opts=                # more less.bin.abx flags, e.g. "--context any" on a tiny corpus
num_threads=1
jobs=1                   # runs at a time (each one thread; 2 on a 2-core machine)
ssl_opts=                # more less.bin.ssl_pretrain flags for every run
# shellcheck source=../../../../tools/parse_options.sh
. ../../../tools/parse_options.sh
# shellcheck source=../../../../tools/path.sh
. ../../../tools/path.sh
# shellcheck source=../../../../tools/less_stages.sh
. "$LESS_ROOT/tools/less_stages.sh"

scenes=${scenes:-$data/scenes}
read -ra abx_flags <<<"$abx_opts"
read -ra ssl_flags <<<"$ssl_opts"
die() { echo "grounding.sh: $*" >&2; exit 1; }
fb() { echo "$data/fbank/mini-$1_cuts_$2.jsonl.gz"; }
for task in asr ast; do
  for split in unsup_wild train_sup dev test_clean; do
    [ -f "$(fb "$task" "$split")" ] || die "$(fb "$task" "$split") is missing: run ./run.sh --stop-stage 3 first"
  done
done

mkdir -p "$out/data" "$out/abx"
[ -f "$scenes/scenes.jsonl" ] || python -m less.bin.render_scenes --data-dir "$data" --tasks asr,ast \
  --splits train_sup,dev,test_clean --out-dir "$scenes"
half() { echo "$out/data/mini-$1_cuts_$2_half.jsonl.gz"; }
for task in asr ast; do
  for split in unsup_wild train_sup; do
    # half of the Mandarin hours from each language (the bilingual encoders' total = zh's)
    [ -f "$(half "$task" "$split")" ] || python -m less.bin.subset_cuts --in-cuts "$(fb "$task" "$split")" \
      --fraction 0.5 --fraction-of "$(fb asr "$split")" --seed 0 --out-cuts "$(half "$task" "$split")"
  done
  less_phone_alignments "$data" "$task" test_clean  # the same file the recipe's stage-5 ABX uses
done

run_one() {  # encoder seed
  local enc=$1 s=$2 dir task lang layers=() args vis=()
  dir="$out/${enc}_s$s"
  args=(--method bestrq --exp-dir "$dir" --num-epochs "$ssl_epochs" --model "$model" --max-duration "$max_duration"
        --warmup-batches 200 --ref-duration 2 --seed "$s" --quantizer-seed "$s" --num-threads "$num_threads"
        --valid-cuts "$(fb asr dev)")
  case "$enc" in
    zh | zh_vg)
      args+=(--train-cuts "$(fb asr unsup_wild)")
      vis=(--visual-cuts "$(fb asr train_sup)" --visual-valid-cuts "$(fb asr dev)") ;;
    zhes | zhes_vg)
      args+=(--train-cuts "$(half asr unsup_wild)" --train-cuts "$(half ast unsup_wild)")
      vis=(--visual-cuts "$(half asr train_sup)" --visual-cuts "$(half ast train_sup)"
           --visual-valid-cuts "$(fb asr dev)") ;;  # R@k on the same (Mandarin) dev scenes as zh_vg
    *) die "unknown encoder '$enc' (zh zh_vg zhes zhes_vg)" ;;
  esac
  [[ "$enc" == *_vg ]] && args+=(--visual-images "$scenes" "${vis[@]}" --visual-weight "$visual_weight"
                                 --visual-every "$visual_every")
  python -m less.bin.ssl_pretrain "${args[@]}" "${ssl_flags[@]}"
  for layer in $abx_layers; do layers+=(--layer "$layer"); done
  for task in asr ast; do
    lang=zh; [ "$task" = ast ] && lang=es
    [ -f "$dir/abx_$lang.json" ] || python -m less.bin.abx --cuts "$(fb "$task" test_clean)" \
      --alignments "$(less_phones_file "$data/phones" "$task" test_clean)" --units phone --checkpoint "$dir/epoch-$ssl_epochs.pt" \
      "${layers[@]}" --num-threads "$num_threads" "${abx_flags[@]}" --out "$dir/abx_$lang.json"
  done
}

for task in asr ast; do  # the input features' ABX: the floor every encoder is compared with
  lang=zh; [ "$task" = ast ] && lang=es
  [ -f "$out/abx/fbank_$lang.json" ] || python -m less.bin.abx --cuts "$(fb "$task" test_clean)" \
    --alignments "$(less_phones_file "$data/phones" "$task" test_clean)" --units phone --layer fbank --num-threads "$num_threads" \
    "${abx_flags[@]}" --out "$out/abx/fbank_$lang.json"
done
# at most $jobs runs at a time (less_wait_first collects each run's status by its pid)
for enc in $encoders; do
  for s in $seeds; do
    echo "$(date '+%F %T') grounding.sh: $enc, seed $s -> $out/${enc}_s$s (log: $out/${enc}_s$s.log)"
    run_one "$enc" "$s" >"$out/${enc}_s$s.log" 2>&1 &
    less_pids+=("$!") less_names+=("$out/${enc}_s$s")
    while [ "${#less_pids[@]}" -ge "$jobs" ]; do less_wait_first; done
  done
done
while [ "${#less_pids[@]}" -gt 0 ]; do less_wait_first; done

# shellcheck disable=SC2086  # encoders and seeds are lists
python -m less.bin.report_grounding --out-dir "$out" --encoders $encoders --seeds $seeds
cat "$out/RESULTS.md"
