#!/usr/bin/env bash
# Training part of the demo (sourced by scripts/demo.sh): a counter on a frozen, offline
# EfficientNet-Lite0 backbone with cached features, the seed-001 custom CNN as the
# baseline to beat, evaluation of both and a side-by-side comparison; then a small
# SSDLite detector on the food set, evaluated on its test split.
set -euo pipefail
DEMO=${DEMO:-demo}
BIN=${BIN:-.venv/bin}
CV="$BIN/cvpipe"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "train: counter on a frozen EfficientNet-Lite0 (ImageNet weights from the offline package, cached features)"
"$CV" train "$DEMO/datasets/bins" --config recipes/demo_counter.yaml --out "$DEMO/runs/lite0-counter"

step "train: the custom CNN baseline (seed 001), from scratch"
"$CV" train "$DEMO/datasets/bins" --config recipes/seed001_custom_cnn.yaml --epochs 2 --out "$DEMO/runs/custom-cnn-baseline"

step "evaluate both on the test split"
"$CV" eval "$DEMO/runs/lite0-counter" --split test
"$CV" eval "$DEMO/runs/custom-cnn-baseline" --split test

step "compare: baseline vs EfficientNet-Lite0 (McNemar, bootstrap CI)"
"$CV" compare "$DEMO/runs/custom-cnn-baseline" "$DEMO/runs/lite0-counter" --names custom_cnn,lite0 --out "$DEMO/runs/compare"

{
  echo "  counter run:     $DEMO/runs/lite0-counter (eval/report.html, metrics.jsonl, model_card.json)"
  echo "  baseline run:    $DEMO/runs/custom-cnn-baseline"
  echo "  comparison:      $DEMO/runs/compare/report.html"
} >> "$DEMO/summary.txt"

step "train: a small detector (SSDLite-MobileNetV2 at 160 px, ImageNet backbone from the offline package) on the food set"
"$CV" train "$DEMO/datasets/food" --config recipes/demo_detector.yaml --out "$DEMO/runs/ssdlite-food"

step "evaluate the detector on the test split (COCO mAP, IoU/confidence statistics, PR curves)"
"$CV" eval "$DEMO/runs/ssdlite-food" --split test
echo "  detector run:    $DEMO/runs/ssdlite-food (eval/report.html, metrics.jsonl, model_card.json)" >> "$DEMO/summary.txt"
