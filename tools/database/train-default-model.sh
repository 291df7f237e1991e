#!/usr/bin/env bash
# Meta-trains the shipped NB201 search model from datasets/meta-train/*.csv and datasets/features/*.json,
# then packages it into datasets/models/default (full) or datasets/models/strict, with the CIFAR-10 feature store as its default dataset.
#   tools/database/train-default-model.sh full|strict [GEN_EPOCHS] [PRED_EPOCHS] [extra meta-train options...]
# full: MNIST + Fashion-MNIST + CIFAR-10 (<= 5-class) tasks; strict: MNIST + Fashion-MNIST only.
# The database: datasets/meta-train/{strict,cifar10}-<recipe>.csv of RECIPE=<id> (default: the calibrated recipe).
# Needs built apps (npx nx run-many -t build). Runs the two trainings side by side (one BLAS thread each).
set -euo pipefail
cd "$(dirname "$0")/../.."
variant=${1:?full or strict}
gen_epochs=${2:-400}
pred_epochs=${3:-400}
shift $(( $# < 3 ? $# : 3 ))
runs=${RUNS_DIR:-runs}/$variant
mkdir -p "$runs"
db="$runs/database.csv"
recipe=${RECIPE:-nb201-c8n2-16px-5ep-200pc}
case "$variant" in
  full) parts="datasets/meta-train/strict-$recipe.csv datasets/meta-train/cifar10-$recipe.csv" ;;
  strict) parts="datasets/meta-train/strict-$recipe.csv" ;;
  *) echo "unknown variant '$variant' (full or strict)" >&2; exit 2 ;;
esac
# one database: the first file's header, then every file's records
first=1
for f in $parts; do
  if [ $first = 1 ]; then cat "$f"; first=0; else tail -n +2 "$f"; fi
done > "$db.tmp" && mv "$db.tmp" "$db"
features=(--features mnist=datasets/features/mnist.json --features fashion-mnist=datasets/features/fashion-mnist.json --features cifar10=datasets/features/cifar10.json)
trainer="node apps/trainer/dist/index.js"
export METAD2A_BLAS_THREADS=1
$trainer meta-train --model generator --database "$db" "${features[@]}" --extractor 'mobilenet_v1_1.0@96' \
  --epochs "$gen_epochs" --valid 0.1 --out "$runs/generator" "$@" > "$runs/generator.log" 2>&1 &
gen=$!
$trainer meta-train --model predictor --database "$db" "${features[@]}" --extractor 'mobilenet_v1_1.0@96' \
  --epochs "$pred_epochs" --valid 0.1 --out "$runs/predictor" "$@" > "$runs/predictor.log" 2>&1 &
pred=$!
wait $gen $pred
last() { ls "$1"/ckpt_[0-9]*.json | sed 's/.*ckpt_\([0-9]*\).json/\1 &/' | sort -n | tail -1 | cut -d' ' -f2; }
$trainer package-model --generator "$(last "$runs/generator")" --predictor "$runs/predictor/ckpt_max_corr.json" \
  --out "datasets/models/$( [ "$variant" = full ] && echo default || echo "$variant")" --name "metad2a-nb201-$variant" --default-dataset datasets/features/cifar10.json \
  --description "NB201 generator + predictor meta-trained on our own database ($variant variant); see datasets/README.md"
