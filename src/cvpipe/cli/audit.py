"""Audit a dataset: near-duplicates and split leaks, likely label errors, outliers, an image-size shortcut, boxes a detector disputes."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table, warn
from cvpipe.config import load_config
from cvpipe.tasks.registry import get_task

HELP = "find near-duplicates, split leaks, label errors, outliers, size shortcuts"
EXAMPLES = """
  cvpipe audit datasets/weather                        # → datasets/weather/audit/{audit.json,report.html}
  cvpipe audit datasets/weather --fix datasets/weather-clean          # cleaned copy; labels kept
  cvpipe audit datasets/weather --fix datasets/weather-relabel --relabel
  cvpipe audit datasets/bins --run runs/lite0          # the run's predictions on images it did not train on
  cvpipe audit datasets/food --run runs/food-ssdlite   # + boxes the detector confidently disputes
  cvpipe audit datasets/weather --set duplicates.threshold=0.95 --set labels.folds=10
  cvpipe audit datasets/weather --model tf_efficientnet_lite2 --out audits/weather-lite2

Embeddings: the pooled features of a frozen pretrained backbone (default
tf_efficientnet_lite0, ImageNet weights resolved offline), read from the frozen-feature
cache ($CVPIPE_HOME/features) that 'cvpipe train --freeze frozen' shares. Near-duplicates:
cosine similarity >= duplicates.threshold (default 0.90) between embeddings at 64 px, found by
exact nearest-neighbour search, plus byte-identical files; a group spanning splits is a
leak, one with different labels is a conflict. Label errors: confident learning
(cleanlab) on out-of-sample probabilities (k-fold logistic regression on the embeddings,
or --run's predictions on the images it did not train on). Outliers: far from every
class centre. Size shortcut: a size-only classifier beats chance.
--fix OUT writes a cleaned dataset (leak groups moved to one split, duplicates within a
split collapsed, labels kept unless --relabel); DATASET is never modified.
Needs: pip install 'cvpipe[audit]'. Every key: --set KEY=VALUE (see AuditConfig).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset directory (from 'cvpipe import')")
    p.add_argument(
        "--run",
        help="a trained run: its predictions score the labels (classify/count) or its "
        "detector's disagreements are listed (detect)",
    )
    p.add_argument("--fix", metavar="OUT", help="write a cleaned dataset to this new directory")
    p.add_argument(
        "--relabel",
        action="store_true",
        help="with --fix: give likely label errors their suggested label",
    )
    p.add_argument(
        "--out", metavar="DIR", help="where audit.json and report.html go (default DATASET/audit)"
    )
    p.add_argument("--model", help="backbone for the embeddings (default tf_efficientnet_lite0)")
    p.add_argument("--weights", help="imagenet (offline), none, or a weights file")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--splits", help="comma-separated splits to audit (default: all records)")


def run(args: argparse.Namespace) -> int:
    from cvpipe.audit.config import AuditConfig
    from cvpipe.audit.scan import audit
    from cvpipe.errors import ConfigError

    if args.relabel and not args.fix:
        raise ConfigError("--relabel is used with --fix OUT (it relabels the cleaned copy)")
    values = {
        "out": args.out, "model": args.model, "weights": args.weights, "device": args.device,
        "splits": args.splits.split(",") if args.splits else None,
    }  # fmt: skip
    cfg = load_config(AuditConfig, args.config, args.overrides, values)
    res = audit(args.dataset, cfg, run=args.run)
    s = res.summary
    rows = [
        ["images", s["images"]],
        ["duplicate groups (byte-identical / near)", f"{s['duplicate_groups']} ({s['identical_groups']} / {s['near_duplicate_groups']})"],
        ["leak groups (span splits)", s["leak_groups"]],
        ["cross-split pairs", s["cross_split_pairs"]],
        ["groups with conflicting labels", s["conflicting_label_groups"]],
    ]  # fmt: skip
    one_class = get_task(res.dataset.task).one_class_per_image
    if one_class:
        rows.append(["likely label errors", s["label_issues"]])
    rows.append(["outliers", s["outliers"]])
    if res.shortcut is not None:
        sc = res.shortcut
        told = sum(v["images"] for v in sc.exclusive.values())
        rows.append(
            [
                "size shortcut",
                f"{'YES' if sc.flagged else 'no'} (size-only balanced acc. {sc.balanced_accuracy:.3f} "
                f"vs chance {sc.chance:.3f}; {told} images with sizes no other class has)",
            ]
        )
    if res.shortcut is not None:
        for c, v in res.shortcut.exclusive.items():
            if res.shortcut.flagged:
                warn(
                    f"size shortcut: {v['images']} {c} images ({100 * v['share']:.1f}%): {v['rule']}"
                )
    if res.run is not None and not one_class:
        rows.append(["boxes the detector disputes", s["box_disagreements"]])
    echo(table(rows, ["finding", "count"], title=f"audit of {res.dataset.root}"))
    if s["leak_groups"]:
        warn(
            f"{s['leak_groups']} duplicate groups cross splits: evaluation scores are optimistic (fix: --fix OUT)"
        )
    if s["unreadable"]:
        warn(f"{s['unreadable']} images could not be read (audit.json lists them)")
    echo(f"findings: {res.out / 'audit.json'}")
    if cfg.report:
        echo(f"report:   {res.out / 'report.html'}")
    if args.fix:
        from cvpipe.audit.fix import write_fixed

        fixed = write_fixed(res, args.fix, relabel=args.relabel)
        echo(
            f"cleaned dataset: {args.fix} ({fixed['records_out']} of {fixed['records_in']} records; "
            f"{len(fixed['moved'])} moved, {len(fixed['dropped'])} dropped, {len(fixed['relabelled'])} relabelled)"
        )
    return 0
