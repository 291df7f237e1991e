#!/usr/bin/env bash
# Prints part P of K disjoint task parts of a database CSV (header kept): task i, in order of first appearance
# of its task_id (first column), goes to part i mod K, so a task's records stay together. The one split rule of
# train-default-model.sh's BAGS and database-size-curve.sh, so the experiment's parts are the shipped bag's.
#   tools/database/task-part.sh DATABASE.csv K P > part.csv
set -euo pipefail
db=${1:?database csv}; k=${2:?number of parts}; p=${3:?part index}
[[ "$k" =~ ^[0-9]+$ && "$p" =~ ^[0-9]+$ ]] && [ "$p" -lt "$k" ] || { echo "task-part: need K >= 1 and 0 <= P < K, got K='$k' P='$p'" >&2; exit 2; }
awk -F, -v k="$k" -v p="$p" 'NR == 1 { print; next } { if (!($1 in idx)) idx[$1] = n++; if (idx[$1] % k == p) print }' "$db"
