#!/usr/bin/env bash
# Would more database records help? Splits the full NB201 database (strict + cifar10 parts) into K disjoint
# parts by task (task i goes to part i mod K, in order of first appearance), meta-trains one predictor per
# seed on each part with the shipped model's settings, and evaluates each part's ensemble and each single
# predictor with tools/database/ensemble-eval.mjs (candidates from the shipped generator, so only the predictor
# differs from the shipped model's figures in datasets/README.md).
#   tools/database/database-size-curve.sh [K=2] [PRED_EPOCHS=60]
# Env: OUT (work folder, default /tmp/metad2a-size-curve; must not exist), SEEDS (default "333 1"),
# RECIPE (database recipe, default nb201-c8n2-16px-5ep-200pc). Needs built apps (npx nx run-many -t build).
# Prints one line per model; the logs and packaged models stay in OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
k=${1:-2}
epochs=${2:-60}
out=${OUT:-/tmp/metad2a-size-curve}
recipe=${RECIPE:-nb201-c8n2-16px-5ep-200pc}
read -r -a seeds <<< "${SEEDS:-333 1}"
[ -e "$out" ] && { echo "$out exists: give another OUT= (runs are not reused)" >&2; exit 2; }
mkdir -p "$out"
full="$out/full.csv"
{ cat "datasets/meta-train/strict-$recipe.csv"; tail -n +2 "datasets/meta-train/cifar10-$recipe.csv"; } > "$full"
trainer="node apps/trainer/dist/index.js"
features=(--features mnist=datasets/features/mnist.json --features fashion-mnist=datasets/features/fashion-mnist.json
  --features cifar10=datasets/features/cifar10.json --extractor 'mobilenet_v1_1.0@96')
export METAD2A_BLAS_THREADS=1
for ((p = 0; p < k; p++)); do
  db="$out/part$p.csv"
  tools/database/task-part.sh "$full" "$k" "$p" > "$db"
  echo "part $p: $(($(wc -l < "$db") - 1)) records, $(tail -n +2 "$db" | cut -d, -f1 | sort -u | wc -l) tasks"
  pids=()
  for s in "${seeds[@]}"; do
    $trainer meta-train --model predictor --search-space nb201 --database "$db" "${features[@]}" --epochs "$epochs" --valid 0.1 \
      --seed "$s" --lr 0.001 --checkpoint-every 10 --out "$out/part$p-s$s" > "$out/part$p-s$s.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { echo "a predictor meta-training of part $p failed: $out/part$p-s*.log" >&2; exit 1; }; done
done
# package-model needs a generator checkpoint; its candidates are not used (ensemble-eval --generator takes the
# shipped one), so one epoch on part 0 will do
$trainer meta-train --model generator --search-space nb201 --database "$out/part0.csv" "${features[@]}" --epochs 1 --valid 0.1 \
  --out "$out/gen" > "$out/gen.log" 2>&1
for ((p = 0; p < k; p++)); do
  all=()
  for s in "${seeds[@]}"; do
    all+=(--predictor "$out/part$p-s$s/ckpt_max_corr.json")
    $trainer package-model --generator "$out/gen/last.json" --predictor "$out/part$p-s$s/ckpt_max_corr.json" --out "$out/model-part$p-s$s" --name "part$p-s$s" > /dev/null
    node tools/database/ensemble-eval.mjs --generator datasets/models/default "$out/model-part$p-s$s"
  done
  if [ "${#seeds[@]}" -gt 1 ]; then
    $trainer package-model --generator "$out/gen/last.json" "${all[@]}" --out "$out/model-part$p" --name "part$p" > /dev/null
    node tools/database/ensemble-eval.mjs --generator datasets/models/default "$out/model-part$p"
  fi
done
