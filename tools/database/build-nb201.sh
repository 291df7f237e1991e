#!/usr/bin/env bash
# Builds the shipped NB201 meta-training database (datasets/meta-train/) in growing rounds, so that a run
# stopped at any point leaves a balanced database, and a rerun resumes where it stopped (records already in
# a file are skipped). Round r asks for 2r tasks per (source, class count); task k of a plan depends only on
# (seed, k, sampling settings), so each round extends the previous plans instead of replacing them.
#
#   tools/database/build-nb201.sh strict ROUNDS   # MNIST + Fashion-MNIST tasks of 2..10 classes
#   tools/database/build-nb201.sh cifar ROUNDS    # CIFAR-10 training images, tasks of 2..5 classes (never all 10)
#
# Output: datasets/meta-train/{strict,cifar10}-<recipe>.csv (+ .tasks.json), one file per part and recipe, so
# records of two recipes are never mixed. RECIPE=<id> picks another recipe (default: the calibrated one).
# Needs the built trainer (npx nx run trainer:build). Each record trains one cell with the recipe.
set -euo pipefail
cd "$(dirname "$0")/../.."
part=${1:?strict or cifar}
rounds=${2:-10}
recipe=${RECIPE:-nb201-c8n2-16px-5ep-200pc}
trainer="node apps/trainer/dist/index.js"
case "$part" in
  strict) sources="mnist fashion-mnist"; classes="2 3 4 5 6 7 8 9 10"; out=datasets/meta-train/strict-$recipe.csv; per=2 ;;
  cifar) sources="cifar10"; classes="2 3 4 5"; out=datasets/meta-train/cifar10-$recipe.csv; per=4 ;;
  *) echo "unknown part '$part' (strict or cifar)" >&2; exit 2 ;;
esac
for r in $(seq 1 "$rounds"); do
  for src in $sources; do
    for c in $classes; do
      $trainer build-database --space nb201 --sources "$src" --tasks $((per * r)) --classes-per-task "$c" \
        --archs-per-task 10 --test-per-class 50 --recipe "$recipe" --seed 2026 --out "$out"
    done
  done
done
