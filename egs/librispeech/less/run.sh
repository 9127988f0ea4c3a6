#!/usr/bin/env bash
# LESS for English ASR on LibriSpeech: train-clean-100 (100 h) is the supervised set, the
# other 860 h (train-clean-360 + train-other-500) the unlabeled set with its transcripts
# hidden (custom["ref_text"]: read only to report the pseudo-labels' error) -- the split
# of the noisy-student papers (Park et al., Interspeech 2020, "Improved Noisy Student
# Training for Automatic Speech Recognition"). Models are selected on dev-clean; dev-other,
# test-clean and test-other are reported (WER).
#
# Stage 0 runs lhotse's own LibriSpeech preparer (lhotse.recipes.prepare_librispeech, what
# `lhotse prepare librispeech` runs) into $data/lhotse; every later stage is the generic
# recipe egs/lhotse/less/run.sh on those manifests (its stages 0-10; this script passes on
# every option it does not know itself, e.g. --model, --systems "N L", --llm-base-url).
#
#   ./run.sh --librispeech-dir /data/LibriSpeech          # all stages
#   ./run.sh --librispeech-dir /data/LibriSpeech --stage 4 --systems "N L" --num-iters 1
#
# Download (openslr.org/12, ~60 GB as tar.gz): train-clean-100, train-clean-360,
# train-other-500, dev-clean, dev-other, test-clean, test-other; `lhotse download
# librispeech --full DIR` fetches and unpacks them.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")"

librispeech_dir=             # the LibriSpeech directory (holding train-clean-100/ ...), or its parent
stage=0                      # first stage to run
stop_stage=100               # last stage to run
data=data                    # lhotse manifests (data/lhotse), then the generic recipe's data
exp=exp                      # models, decoding results, RESULTS.md
nj=8                         # parallel jobs of data preparation
train_parts=train-clean-100
unsup_parts="train-clean-360 train-other-500"
dev_part=dev-clean
test_parts="dev-other test-clean test-other"

rest=()  # options for the generic recipe
while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      sed -n '2,/^set -euo/p' "$self" | sed '$d'
      echo "Options of this script: --librispeech-dir --stage --stop-stage --data --exp --nj --train-parts"
      echo "  --unsup-parts --dev-part --test-parts; every other option goes to the generic recipe:"
      exec ../../lhotse/less/run.sh --help ;;
    --librispeech-dir | --stage | --stop-stage | --data | --exp | --nj | --train-parts | --unsup-parts | \
    --dev-part | --test-parts)
      [ $# -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 1; }
      name=${1#--}; name=${name//-/_}
      printf -v "$name" '%s' "$2"
      shift 2 ;;
    *) rest+=("$1"); shift ;;
  esac
done
. ../../../tools/path.sh
. "$LESS_ROOT/tools/less_stages.sh"
mkdir -p "$data" "$exp"
data=$(cd "$data" && pwd) exp=$(cd "$exp" && pwd)  # the generic recipe runs in its own directory

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  [ -n "$librispeech_dir" ] || less_die "stage 0 needs --librispeech-dir (the directory holding train-clean-100/ ...)"
  [ -d "$librispeech_dir/LibriSpeech" ] && librispeech_dir=$librispeech_dir/LibriSpeech
  parts="$train_parts $unsup_parts $dev_part $test_parts"
  for part in $parts; do
    [ -d "$librispeech_dir/$part" ] || less_die "stage 0: $librispeech_dir/$part does not exist (download and unpack it, or leave it out of the --*-parts options)"
  done
  less_log "Stage 0: lhotse's LibriSpeech preparer: $parts -> $data/lhotse"
  # shellcheck disable=SC2086  # parts: a list of part names
  python - "$librispeech_dir" "$data/lhotse" "$nj" $parts <<'PY'
import logging
import sys

from lhotse.recipes import prepare_librispeech

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [lhotse] %(message)s")
corpus_dir, output_dir, num_jobs, *parts = sys.argv[1:]
prepare_librispeech(corpus_dir, dataset_parts=parts, output_dir=output_dir, num_jobs=int(num_jobs))
PY
fi

exec ../../lhotse/less/run.sh --manifest-dir "$data/lhotse" --prefix librispeech --corpus librispeech --lang en \
  --train-parts "$train_parts" --unsup-parts "$unsup_parts" --dev-part "$dev_part" --test-parts "$test_parts" \
  --speed-perturb true --data "$data" --exp "$exp" --nj "$nj" --stage "$stage" --stop-stage "$stop_stage" \
  "${rest[@]}"
