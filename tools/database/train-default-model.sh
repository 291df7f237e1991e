#!/usr/bin/env bash
# Meta-trains a shipped search model from datasets/meta-train/*.csv and datasets/features/*.json, then packages
# it into datasets/models/default (full), datasets/models/strict or datasets/models/mbv3, with the CIFAR-10
# feature store as its default dataset.
#   tools/database/train-default-model.sh full|strict|mbv3 [GEN_EPOCHS] [PRED_EPOCHS] [extra meta-train options...]
# full: NB201, MNIST + Fashion-MNIST + CIFAR-10 (<= 5-class) tasks; strict: NB201, MNIST + Fashion-MNIST only;
# mbv3: OFA MobileNetV3 subnets on CIFAR-10 (<= 5-class) tasks.
# The database: datasets/meta-train/{strict,cifar10,mbv3}-<recipe>.csv of RECIPE=<id> (default: the space's default recipe).
# Needs built apps (npx nx run-many -t build). Runs the two trainings side by side (one BLAS thread each).
# Extra options after the epochs go to both trainings; GEN_ARGS="..." / PRED_ARGS="..." to one of them only
# (e.g. GEN_ARGS="--set selection.rule=all" for the mbv3 generator, see datasets/README.md).
# PRED_SEEDS="333 1" trains one predictor per seed (default: 333 alone, the config default) and ships them as an
# ensemble (candidates ranked by the predictors' mean accuracy); the first seed's run is runs/<variant>/predictor.
# BAGS=K (K >= 2) adds, for each seed, one predictor per part of K disjoint task parts of the database (task i in
# order of first appearance goes to part i mod K): bagging. Predictors meta-trained on different halves of the
# database disagree far more than seeds do (see datasets/README.md), and averaging them is what pays.
set -euo pipefail
cd "$(dirname "$0")/../.."
variant=${1:?full, strict or mbv3}
gen_epochs=${2:-400}
pred_epochs=${3:-400}
shift $(( $# < 3 ? $# : 3 ))
runs=${RUNS_DIR:-runs}/$variant
mkdir -p "$runs"
db="$runs/database.csv"
space=nb201
features=(--features mnist=datasets/features/mnist.json --features fashion-mnist=datasets/features/fashion-mnist.json --features cifar10=datasets/features/cifar10.json)
model_dir=datasets/models/$variant
name=metad2a-$space-$variant
case "$variant" in
  full) recipe=${RECIPE:-nb201-c8n2-16px-5ep-200pc}; parts="datasets/meta-train/strict-$recipe.csv datasets/meta-train/cifar10-$recipe.csv"; model_dir=datasets/models/default ;;
  strict) recipe=${RECIPE:-nb201-c8n2-16px-5ep-200pc}; parts="datasets/meta-train/strict-$recipe.csv" ;;
  mbv3) recipe=${RECIPE:-mbv3-w100-32px-5ep-200pc}; parts="datasets/meta-train/mbv3-$recipe.csv"; space=mbv3; name=metad2a-mbv3-cifar10; features=(--features cifar10=datasets/features/cifar10.json) ;;
  *) echo "unknown variant '$variant' (full, strict or mbv3)" >&2; exit 2 ;;
esac
# one database: the first file's header, then every file's records
first=1
for f in $parts; do
  if [ $first = 1 ]; then cat "$f"; first=0; else tail -n +2 "$f"; fi
done > "$db.tmp" && mv "$db.tmp" "$db"
trainer="node apps/trainer/dist/index.js"
export METAD2A_BLAS_THREADS=1
$trainer meta-train --model generator --search-space "$space" --database "$db" "${features[@]}" --extractor 'mobilenet_v1_1.0@96' \
  --epochs "$gen_epochs" --valid 0.1 --out "$runs/generator" "$@" ${GEN_ARGS:-} > "$runs/generator.log" 2>&1 &
gen=$!
read -r -a seeds <<< "${PRED_SEEDS:-333}"
bags=${BAGS:-0}
[[ "$bags" =~ ^[0-9]+$ ]] && [ "$bags" != 1 ] || { echo "BAGS must be 0 (none) or a number of parts >= 2, got '$bags'" >&2; exit 2; }
preds=()
pids=()
train_predictor() { # run name, database, seed
  preds+=("$1")
  $trainer meta-train --model predictor --search-space "$space" --database "$2" "${features[@]}" --extractor 'mobilenet_v1_1.0@96' \
    --epochs "$pred_epochs" --valid 0.1 --seed "$3" --out "$runs/$1" "${extra[@]}" ${PRED_ARGS:-} > "$runs/$1.log" 2>&1 &
  pids+=($!)
}
extra=("$@")
for i in "${!seeds[@]}"; do
  run=predictor
  [ "$i" -gt 0 ] && run=predictor-seed${seeds[$i]}
  train_predictor "$run" "$db" "${seeds[$i]}"
done
for ((part = 0; part < bags; part++)); do
  tools/database/task-part.sh "$db" "$bags" "$part" > "$runs/database-bag$part.csv"
  for s in "${seeds[@]}"; do train_predictor "predictor-bag$part-seed$s" "$runs/database-bag$part.csv" "$s"; done
done
# one wait each: `wait A B` returns B's status only, and a failed run must stop the packaging
wait $gen || { echo "generator meta-training failed: $runs/generator.log" >&2; exit 1; }
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "predictor meta-training failed: $runs/${preds[$i]}.log" >&2; exit 1; }
done
pred_args=()
for run in "${preds[@]}"; do pred_args+=(--predictor "$runs/$run/ckpt_max_corr.json"); done
# the generator's final epoch: last.json is written at the end of every finished run (package-model drops its
# optimizer state), whatever --checkpoint-every was; a periodic ckpt_<N> may be older than the last epoch
$trainer package-model --generator "$runs/generator/last.json" "${pred_args[@]}" \
  --out "$model_dir" --name "$name" --default-dataset datasets/features/cifar10.json \
  --description "$space generator + predictor (${#seeds[@]} seed(s): ${seeds[*]}$([ "$bags" -gt 0 ] && echo ", plus each seed on each of $bags disjoint task parts")) meta-trained on our own database ($variant variant, recipe $recipe); see datasets/README.md"
# the runs' configs, logs and curves travel with the model (the checkpoints stay in $runs)
mkdir -p "$model_dir/training"
for m in generator "${preds[@]}"; do
  for f in config.json log.jsonl curves.svg; do cp "$runs/$m/$f" "$model_dir/training/$m-$f"; done
done
