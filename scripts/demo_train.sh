#!/usr/bin/env bash
# Training part of the demo (sourced by scripts/demo.sh): a counter on a frozen, offline
# EfficientNet-Lite0 backbone with cached features, the seed-001 custom CNN as the
# baseline to beat, evaluation of both and a side-by-side comparison; then the default
# detector (what `cvpipe train` picks for a detect dataset: recipes/detect_coco_ssd_mnv2.yaml,
# the COCO-trained SSD-MobileNetV2 converted offline, 6 epochs at 300 px) on the food set,
# with two demo settings: the trunk frozen with its maps cached (--freeze frozen) and no
# IoU crops. On these 105 synthetic 160 px images and 42 steps the crops slow fitting
# (test mAP@.5 0.72 with them, 0.965 without; val 0.88 vs 0.98), and the cache trains
# the same model (benchmarks/detect_train_speed.py) in 2.1 instead of 5.2 CPU-minutes.
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

step "train: the default detector (COCO-trained SSD-MobileNetV2, converted offline from the openpibo package, 300 px) on the food set, trunk frozen and cached"
"$CV" train "$DEMO/datasets/food" --freeze frozen --set detector.augment.iou_crop=false --out "$DEMO/runs/ssd-food"

step "evaluate the detector on the test split (COCO mAP, IoU/confidence statistics, PR curves)"
"$CV" eval "$DEMO/runs/ssd-food" --split test
echo "  detector run:    $DEMO/runs/ssd-food (eval/report.html, metrics.jsonl, model_card.json)" >> "$DEMO/summary.txt"
