"""``AuditConfig``: the settings of ``cvpipe audit`` (typed; ``--set key=value``).

Example:
    >>> cfg = load_config(AuditConfig, overrides=["duplicates.threshold=0.97"])
    >>> cfg.duplicates.threshold, cfg.labels.folds
    (0.97, 5)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cvpipe.config import Config


class DuplicateConfig(Config):
    """Near-duplicates from embeddings.

    Attributes:
        threshold: cosine similarity of L2-normalised embeddings from which two images
            count as near-duplicates (chosen on the weather set, where 0.90 found 84% of
            the known pairs at 87% precision: ``benchmarks/audit_quality.py``).
        input_size: backbone input side for the duplicate embeddings (small, so that a
            photo and its resized copy look alike; see :mod:`cvpipe.audit.embeddings`).
        neighbors: nearest neighbours looked at per image (exact search).
        backend: exact nearest-neighbour library: ``auto`` (faiss when installed, else
            numpy), ``faiss`` (``IndexFlatIP``), ``numpy`` (chunked matrix product) or
            ``sklearn`` (brute-force cosine); all exact, timed in the benchmark.
    """

    threshold: float = Field(default=0.90, gt=0, le=1)
    input_size: int = Field(default=64, ge=16)
    neighbors: int = Field(default=10, ge=1)
    backend: Literal["auto", "faiss", "numpy", "sklearn"] = "auto"


class LabelConfig(Config):
    """Label errors by confident learning (cleanlab) on out-of-sample probabilities.

    Attributes:
        enabled: look for label errors (classify / count datasets).
        folds: k of the k-fold cross-validation on cached features.
        C: inverse L2 strength of the logistic regression trained on the features.
        filter_by: cleanlab's ``find_label_issues`` filter (``prune_by_noise_rate``...).
        max_listed: at most this many label issues in the report's grid.
    """

    enabled: bool = True
    folds: int = Field(default=5, ge=2)
    C: float = Field(default=1.0, gt=0)
    filter_by: Literal[
        "prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"
    ] = "prune_by_noise_rate"
    max_listed: int = Field(default=48, ge=1)


class OutlierConfig(Config):
    """Images far from every class centre.

    Attributes:
        z: robust z-score (median / MAD of the distance to the nearest class centre) from
            which an image is an outlier.
        max_listed: at most this many outliers in the report.
    """

    z: float = Field(default=4.0, gt=0)
    max_listed: int = Field(default=24, ge=1)


class ShortcutConfig(Config):
    """Does image size alone predict the class?

    Attributes:
        margin: flag when the cross-validated balanced accuracy of a size-only classifier
            beats chance (1 / classes) by at least this much.
        folds: k of its cross-validation.
        exclusive_share / min_exclusive: also flag when a class has at least this share
            (and this many) of images whose size no other class has.
    """

    margin: float = Field(default=0.1, gt=0, lt=1)
    folds: int = Field(default=5, ge=2)
    exclusive_share: float = Field(default=0.05, gt=0, le=1)
    min_exclusive: int = Field(default=5, ge=1)


class DetectionAuditConfig(Config):
    """Boxes a trained detector (``--run``) confidently disagrees with.

    Attributes:
        score: detections at or above this score that match no labelled box are
            "missing box" candidates.
        iou: IoU from which a detection matches a labelled box.
        support: a labelled box is a "spurious box" candidate when no detection of its
            class scores at least this much at ``iou`` with it.
        max_listed: at most this many images per kind in the report.
    """

    score: float = Field(default=0.8, gt=0, lt=1)
    iou: float = Field(default=0.5, gt=0, le=1)
    support: float = Field(default=0.05, gt=0, lt=1)
    max_listed: int = Field(default=24, ge=1)


class AuditConfig(Config):
    """All settings of ``cvpipe audit``.

    Attributes:
        model: the frozen backbone whose cached features embed every image.
        weights: ``imagenet`` (offline resolution), ``none`` or a file.
        input_size: square input side (default: the model's own).
        batch_size: images per backbone forward.
        device: ``cpu``, ``cuda`` or ``auto``.
        feature_cache_dir: default ``$CVPIPE_HOME/features``.
        feature_backend: ``auto``, ``torch`` or ``onnxruntime`` (see the feature cache).
        seed: seeds the k-fold splits.
        splits: splits audited (None: every record, including unsplit ones).
        out: where audit.json and report.html go (default ``DATASET/audit``).
        report: write the HTML report.
    """

    model: str = "tf_efficientnet_lite0"
    weights: str | None = "imagenet"
    input_size: int | None = Field(default=None, ge=8)
    batch_size: int = Field(default=64, ge=1)
    device: str = "auto"
    feature_cache_dir: str | None = None
    feature_backend: Literal["auto", "torch", "onnxruntime"] = "auto"
    seed: int = 0
    splits: list[str] | None = None
    out: str | None = None
    report: bool = True
    duplicates: DuplicateConfig = DuplicateConfig()
    labels: LabelConfig = LabelConfig()
    outliers: OutlierConfig = OutlierConfig()
    shortcut: ShortcutConfig = ShortcutConfig()
    detection: DetectionAuditConfig = DetectionAuditConfig()
