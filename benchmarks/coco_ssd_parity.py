"""Converted COCO SSD-MobileNetV2 vs OpenCV DNN running the original TensorFlow graph.

``ssd300_mobilenet_v2`` with weights converted from ``ssd_mobilenet_v2_coco_2018_03_29``
(:mod:`cvpipe.models.coco_ssd`) and OpenCV DNN with the graph + its text graph see the
same 300×300 RGB pixels (each image resized once with PIL, so the comparison measures
the networks, not two resizers). Every OpenCV detection with score >= ``--min-score``
is matched to the converted model's detection of the same class with the highest IoU;
reported: how many matched, the lowest matched IoU, the largest score difference, and
the detections either side has alone. Before any post-processing, the raw outputs are
compared too: all 1917 x 91 sigmoid scores and 1917 x 4 box encodings (OpenCV's
``ClassPredictor/concat/sigmoid`` and ``BoxEncodingPredictor/concat`` blobs). Far
below 0.3, NMS on near-ties can keep different boxes (OpenCV does not clip boxes to the
image before NMS, TF and torchvision do); ``--min-score 0.05`` shows how often.

Images: synthetic ones (shapes and textures), photos shipped inside installed packages
(matplotlib's Grace Hopper, scikit-learn's china/flower), and with ``--data DIR`` up to
``--per-dir`` JPEGs from each folder below DIR (e.g. ../shared/devdata: raccoon,
hymenoptera, weather photos).

    python benchmarks/coco_ssd_parity.py --data ../shared/devdata
    python benchmarks/coco_ssd_parity.py --quick
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import torch
from common import parser, report
from PIL import Image, ImageDraw


def synthetic(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        arr = rng.integers(0, 255, (3,), dtype=np.uint8)[None, None] * np.ones(
            (240, 320, 1), np.uint8
        )
        im = Image.fromarray(arr)
        d = ImageDraw.Draw(im)
        for _ in range(4 + i % 5):
            x, y = rng.integers(0, 280), rng.integers(0, 200)
            w, h = rng.integers(20, 160, size=2)
            fill = tuple(int(v) for v in rng.integers(0, 255, 3))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)([x, y, x + w, y + h], fill=fill)
        out.append(im)
    return out


def package_photos() -> list[tuple[str, Image.Image]]:
    found = []
    for pkg, rel in (("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
                     ("sklearn", "datasets/images/china.jpg"),
                     ("sklearn", "datasets/images/flower.jpg")):  # fmt: skip
        spec = importlib.util.find_spec(pkg)
        if spec and spec.submodule_search_locations:
            p = Path(list(spec.submodule_search_locations)[0]) / rel
            if p.is_file():
                found.append((f"{pkg}:{p.name}", Image.open(p).convert("RGB")))
    return found


def match(cv: np.ndarray, tv: dict[str, torch.Tensor], min_score: float) -> dict[str, list[float]]:
    """cv: [N, 7] OpenCV rows (batch, class, score, x1, y1, x2, y2 normalised)."""
    from torchvision.ops import box_iou

    out: dict[str, list[float]] = {"iou": [], "dscore": [], "cv_only": [], "torch_only": []}
    cv = cv[cv[:, 2] >= min_score]
    tb, ts, tl = tv["boxes"] / 300.0, tv["scores"], tv["labels"]  # COCO ids
    used = set()
    for row in cv:
        same = torch.where(tl == int(round(row[1])))[0]
        if same.numel() == 0:
            out["cv_only"].append(float(row[2]))
            continue
        iou = box_iou(torch.tensor(row[None, 3:7]).clamp(0, 1), tb[same])[0]
        j = int(same[iou.argmax()])
        out["iou"].append(float(iou.max()))
        out["dscore"].append(abs(float(ts[j]) - float(row[2])))
        used.add(j)
    keep = (ts >= min_score).nonzero().flatten().tolist()
    out["torch_only"] = [float(ts[j]) for j in keep if j not in used]
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="folder of photo folders (e.g. ../shared/devdata)")
    p.add_argument("--per-dir", type=int, default=20, help="JPEGs per folder below --data")
    p.add_argument("--min-score", type=float, default=0.3, help="compare detections above this")
    args = p.parse_args()

    import cv2

    from cvpipe.models.coco_ssd import build_coco_model, convert_graph, graph_files

    graph, text = graph_files()
    t0 = time.perf_counter()
    state = convert_graph(graph)
    convert_s = time.perf_counter() - t0
    model = build_coco_model()
    model.load_state_dict(state)
    model.eval()
    net = cv2.dnn.readNetFromTensorflow(str(graph), str(text))

    named = [(f"synthetic-{i}", im) for i, im in enumerate(synthetic(4 if args.quick else 16))]
    named += package_photos()
    if args.data:
        for sub in sorted(Path(args.data).iterdir()):
            files = sorted(sub.rglob("*.jpg"))[
                :: max(1, len(list(sub.rglob("*.jpg"))) // args.per_dir)
            ]
            named += [
                (f"{sub.name}:{f.name}", Image.open(f).convert("RGB"))
                for f in files[: args.per_dir]
            ]
    if args.quick:
        named = named[:10]
    ious, dscores, cv_only, torch_only, n_cv = [], [], [], [], 0
    raw_score, raw_box = 0.0, 0.0
    for _, im in named:
        arr = np.asarray(im.resize((300, 300), Image.Resampling.BILINEAR))
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
        net.setInput(cv2.dnn.blobFromImage(arr, size=(300, 300), swapRB=False, crop=False))
        scores, enc, cv_rows = net.forward(
            ["ClassPredictor/concat/sigmoid", "BoxEncodingPredictor/concat", "detection_out"]
        )
        cv_rows = np.asarray(cv_rows).reshape(-1, 7)
        with torch.no_grad():
            images, _ = model.transform([x])
            head = model.head(list(model.backbone(images.tensors).values()))
            tv = model([x])[0]
        raw_score = max(
            raw_score,
            float(
                np.abs(torch.sigmoid(head["cls_logits"][0]).numpy() - scores.reshape(-1, 91)).max()
            ),
        )
        raw_box = max(
            raw_box, float(np.abs(head["bbox_regression"][0].numpy() - enc.reshape(-1, 4)).max())
        )
        m = match(cv_rows, tv, args.min_score)
        n_cv += int((cv_rows[:, 2] >= args.min_score).sum())
        ious += m["iou"]
        dscores += m["dscore"]
        cv_only += m["cv_only"]
        torch_only += m["torch_only"]
    iou = np.array(ious or [1.0])
    figures = {
        "images": len(named),
        "raw_max_score_diff": f"{raw_score:.1e}",
        "raw_max_box_code_diff": f"{raw_box:.1e}",
        "opencv_detections": n_cv,
        "matched": len(ious),
        "min_iou": round(float(iou.min()), 4),
        "p1_iou": round(float(np.percentile(iou, 1)), 4),
        "iou_ge_0.99": round(float((iou >= 0.99).mean()), 4),
        "max_score_diff": round(float(max(dscores or [0.0])), 5),
        "unmatched_max_score": round(float(max(cv_only + torch_only + [0.0])), 4),
        "convert_s": round(convert_s, 2),
    }
    details = {
        "min_score": args.min_score,
        "opencv": cv2.__version__,
        "images": [n for n, _ in named],
        "cv_only_scores": cv_only,
        "torch_only_scores": torch_only,
    }
    report("coco_ssd_parity", figures, details)


if __name__ == "__main__":
    main()
