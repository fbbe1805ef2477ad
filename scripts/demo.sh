#!/usr/bin/env bash
# The end-to-end demo behind `make demo`: synthetic data → import → validate → eda →
# split → balance → train → evaluate, printing where every result is.
set -euo pipefail
DEMO=${DEMO:-demo}
BIN=${BIN:-.venv/bin}
CV="$BIN/cvpipe"
export CVPIPE_PROGRESS=${CVPIPE_PROGRESS:-1}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/6 generate the demo data (offline, deterministic)"
"$CV" demo-data --out "$DEMO/data"

step "2/6 import the raw Amazon-bin style metadata and the LabelImg VOC files"
"$CV" import amazon-bin "$DEMO/data/raw/amazon-bin/metadata" --images "$DEMO/data/raw/amazon-bin/bin-images" \
  --out "$DEMO/datasets/bins"
"$CV" import voc "$DEMO/data/raw/voc" --out "$DEMO/datasets/food"

step "3/6 validate (decode every image, check boxes, duplicates)"
"$CV" validate "$DEMO/datasets/bins"
"$CV" validate "$DEMO/datasets/food"

step "4/6 exploratory data analysis"
"$CV" eda "$DEMO/datasets/bins"
"$CV" eda "$DEMO/datasets/food"

step "5/6 split 70/20/10, stratified and seeded"
"$CV" split "$DEMO/datasets/bins" --ratios 70/20/10 --seed 0 --force
"$CV" split "$DEMO/datasets/food" --ratios 70/20/10 --seed 0 --force

step "6/6 balance the counting set by undersampling to the smallest class"
"$CV" balance "$DEMO/datasets/bins" --strategy undersample --out "$DEMO/datasets/bins-balanced"

if [ -f scripts/demo_train.sh ]; then
  DEMO="$DEMO" BIN="$BIN" bash scripts/demo_train.sh
fi

step "done — results"
echo "  datasets:        $DEMO/datasets/{bins,bins-balanced,food}"
echo "  validation:      $DEMO/datasets/bins/validation.json, $DEMO/datasets/food/validation.json"
echo "  EDA reports:     $DEMO/datasets/bins/eda/report.html, $DEMO/datasets/food/eda/report.html"
if [ -f "$DEMO/summary.txt" ]; then cat "$DEMO/summary.txt"; fi
