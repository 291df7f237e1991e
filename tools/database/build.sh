#!/usr/bin/env bash
# Builds the shipped meta-training databases (datasets/meta-train/) in growing rounds, so that a run
# stopped at any point leaves a balanced database, and a rerun resumes where it stopped (records already in
# a file are skipped). Round r asks for 2r tasks per (source, class count); task k of a plan depends only on
# (seed, k, sampling settings), so each round extends the previous plans instead of replacing them.
#
#   tools/database/build.sh strict ROUNDS   # NB201: MNIST + Fashion-MNIST tasks of 2..10 classes
#   tools/database/build.sh cifar ROUNDS    # NB201: CIFAR-10 training images, tasks of 2..5 classes (never all 10)
#   tools/database/build.sh mbv3 ROUNDS     # MBV3 subnets: CIFAR-10 training images, tasks of 2..5 classes
#
# Output: datasets/meta-train/{strict,cifar10,mbv3}-<recipe>.csv (+ .tasks.json), one file per part and recipe,
# so records of two recipes are never mixed. RECIPE=<id> picks another recipe (default: the space's default).
# Needs the built trainer (npx nx run trainer:build). Each record trains one architecture with the recipe.
# SOURCES="mnist" (a subset of the part's sources) builds only those sources' tasks, so two processes can
# share a part's file on two cores (e.g. SOURCES=mnist and SOURCES=fashion-mnist for strict): their tasks are
# disjoint and records are single appends. CLASSES="2 3" does the same by class count (e.g. the mbv3 part,
# which has a single source).
set -euo pipefail
cd "$(dirname "$0")/../.."
part=${1:?strict, cifar or mbv3}
rounds=${2:-10}
space=nb201
[ "$part" = mbv3 ] && space=mbv3
default_recipe=nb201-c8n2-16px-5ep-200pc
[ "$space" = mbv3 ] && default_recipe=mbv3-w100-32px-5ep-200pc
recipe=${RECIPE:-$default_recipe}
trainer="node apps/trainer/dist/index.js"
case "$part" in
  strict) sources="mnist fashion-mnist"; classes="2 3 4 5 6 7 8 9 10"; out=datasets/meta-train/strict-$recipe.csv; per=2 ;;
  cifar) sources="cifar10"; classes="2 3 4 5"; out=datasets/meta-train/cifar10-$recipe.csv; per=4 ;;
  mbv3) sources="cifar10"; classes="2 3 4 5"; out=datasets/meta-train/mbv3-$recipe.csv; per=2 ;;
  *) echo "unknown part '$part' (strict, cifar or mbv3)" >&2; exit 2 ;;
esac
# only_of NAME WANTED ALLOWED WHAT: WANTED (a SOURCES= or CLASSES= list) must be a subset of the part's ALLOWED list
only_of() {
  for v in $2; do
    case " $3 " in *" $v "*) ;; *) echo "$1: '$v' is not $4 of part '$part' ($3)" >&2; exit 2 ;; esac
  done
}
if [ -n "${SOURCES:-}" ]; then only_of SOURCES "$SOURCES" "$sources" "a source"; sources=$SOURCES; fi
if [ -n "${CLASSES:-}" ]; then only_of CLASSES "$CLASSES" "$classes" "a class count"; classes=$CLASSES; fi
for r in $(seq 1 "$rounds"); do
  for src in $sources; do
    for c in $classes; do
      $trainer build-database --space "$space" --sources "$src" --tasks $((per * r)) --classes-per-task "$c" \
        --archs-per-task 10 --test-per-class 50 --recipe "$recipe" --seed 2026 --out "$out"
    done
  done
done
