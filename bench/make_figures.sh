#!/usr/bin/env bash
# Runs every `fastmlp experiment` at --size small, one after another, and puts the figures in docs/images/.
# Each experiment's database goes to $OUT (default experiments-small/; rerunning resumes from it), its JSON to
# $OUT/NAME.json, and a line with the wall time and the machine's load average before the run to $OUT/times.txt.
#   bench/make_figures.sh                       # all five
#   bench/make_figures.sh schoenholz saxe       # some
#   MNIST=../shared/data/mnist.npz bench/make_figures.sh schoenholz   # schoenholz on MNIST (2048 images)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-experiments-small}
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
FASTMLP=${FASTMLP:-$PY cli.py}
mkdir -p "$OUT" docs/images
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(symmetry saxe he-xavier lsuv schoenholz)
for name in "${names[@]}"; do
    extra=()
    tag=$name
    if [ "$name" = schoenholz ] && [ -n "${MNIST:-}" ]; then
        extra=(--data-file "$MNIST")
        tag=schoenholz-mnist
    fi
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    $FASTMLP experiment "$name" --size small --out "$OUT/$tag.db" --figure "$OUT/$tag" --json --quiet \
        "${extra[@]}" > "$OUT/$tag.json"
    end=$(date +%s.%N)
    cp "$OUT/$tag.png" "docs/images/experiment-$tag.png"
    printf '%s\t%s\twall %.0f s\tload average before: %s\t%s cores\n' "$(date -u +%FT%TZ)" "$tag" \
        "$(echo "$end - $start" | bc)" "$load" "$(nproc)" | tee -a "$OUT/times.txt"
    $FASTMLP experiment "$name" --size small --out "$OUT/$tag.db" --figure "$OUT/$tag" --quiet "${extra[@]}" \
        > "$OUT/$tag.txt"          # the report again (nothing left to train): the text version
done
