"""``TrainConfig``: every setting of a training run, typed and validated.

Resolved with :func:`cvpipe.config.load_config` from defaults, ``--config FILE``, flags
and ``--set key=value`` (``--set optimizer.lr=0.002``); the result is saved as the run's
``config.yaml`` and reloaded as-is by ``--resume``. Unknown keys are errors with
suggestions.

Example:
    >>> cfg = load_config(TrainConfig, overrides=["model=resnet50", "freeze=frozen", "optimizer.lr=0.002"])
    >>> cfg.optimizer.name, cfg.optimizer.lr
    ('adam', 0.002)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cvpipe.config import Config
from cvpipe.data.detection_transforms import DetectionAugmentConfig
from cvpipe.data.problems import OnError
from cvpipe.data.transforms import AugmentConfig
from cvpipe.engine.health.config import HealthConfig
from cvpipe.models.heads import HeadSpec
from cvpipe.tracking.config import TrackingConfig

FreezeMode = Literal["frozen", "last-n", "full"]


class OptimizerConfig(Config):
    """Optimizer: ``sgd`` (momentum, nesterov), ``adam`` or ``adamw``; weight decay."""

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)


class SchedulerConfig(Config):
    """Learning-rate schedule, stepped once per optimizer step.

    Attributes:
        name: ``none`` | ``step`` (× ``gamma`` at each epoch in ``milestones``) |
            ``cosine`` (to ``min_lr`` at the end) | ``onecycle`` (peak ``optimizer.lr``).
        warmup_epochs: linear warmup from ``warmup_start`` × lr (not with onecycle).
    """

    name: Literal["none", "step", "cosine", "onecycle"] = "none"
    milestones: list[int] = Field(default_factory=list)
    gamma: float = Field(default=0.1, gt=0)
    min_lr: float = Field(default=0.0, ge=0)
    warmup_epochs: float = Field(default=0.0, ge=0)
    warmup_start: float = Field(default=0.01, gt=0, le=1)
    pct_start: float = Field(default=0.3, gt=0, lt=1)


class EarlyStoppingConfig(Config):
    """Which recorded metric decides ``best.pt`` and early stopping.

    Attributes:
        metric: any key of the epoch rows, e.g. ``val.loss``, ``val.accuracy``.
        mode: ``min``, ``max`` or ``auto`` (max for accuracy-like names, else min).
        patience: stop after this many epochs without improvement (None = never stop).
        min_delta: smallest change that counts as an improvement.
    """

    metric: str = "val.loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int | None = Field(default=None, ge=1)
    min_delta: float = Field(default=0.0, ge=0)

    @property
    def resolved_mode(self) -> Literal["min", "max"]:
        if self.mode != "auto":
            return self.mode
        name = self.metric.rsplit(".", 1)[-1].lower()
        maximise = ("accuracy", "f1", "precision", "recall", "map", "auc", "top")
        return "max" if any(name.startswith(m) for m in maximise) else "min"


class DetectorConfig(Config):
    """Detector settings of a ``detect`` run (ignored by classifiers).

    Attributes:
        classification_weight / localization_weight: loss multipliers (seed 004's
            classification/localization weights).
        score_thresh, nms_iou, detections_per_img: inference post-processing, recorded
            in the model card for predict/serve.
        val_score_thresh: score threshold of the detections scored for validation mAP
            (low, as COCO evaluation expects).
        weights: a cvpipe detector checkpoint or state_dict to start from (None: the
            backbone gets ``weights``, the rest is random).
        precise_bn: after each epoch, recompute the trained BatchNorm layers' running
            statistics over this many training batches (forward only) before validating
            and saving (0 = keep the running averages; see
            :func:`cvpipe.engine.detection.recompute_bn_stats`).
        augment: box-aware augmentation (:class:`DetectionAugmentConfig`).
        auto_pack: when no ``pack`` is set and the photos are much larger than the input
            size (median shorter side >= 2x), decode them once into a cached pack at the
            input size (``$CVPIPE_HOME/packs``) instead of every epoch; not used with the
            trunk-map cache (``freeze: frozen``), which decodes each image once anyway.
        class_map: with ``weights: coco``, dataset class -> COCO class name whose
            class-prediction rows a class starts from when the names differ (e.g.
            ``{raccoon: bear}``); classes named like a COCO class are matched anyway.
    """

    classification_weight: float = Field(default=1.0, ge=0)
    localization_weight: float = Field(default=1.0, ge=0)
    score_thresh: float = Field(default=0.3, ge=0, lt=1)
    nms_iou: float = Field(default=0.45, gt=0, le=1)
    detections_per_img: int = Field(default=100, ge=1)
    val_score_thresh: float = Field(default=0.01, ge=0, lt=1)
    weights: str | None = None
    precise_bn: int = Field(default=16, ge=0)
    augment: DetectionAugmentConfig = DetectionAugmentConfig()
    auto_pack: bool = True
    class_map: dict[str, str] = {}


class TrainConfig(Config):
    """All settings of ``cvpipe train`` (see each section's docstring).

    Attributes:
        model: registered model name (``cvpipe models``); None: the dataset task's default
            (:data:`cvpipe.engine.defaults.TASK_DEFAULTS`, filled in by ``train``).
        weights: ``imagenet`` (offline first, then a download when allowed), ``coco``
            (detectors: the whole COCO-trained detector, head rebuilt for the dataset's
            classes), ``none`` (random init) or a file. Left unset on a model without
            pretrained weights (``base_cnn``, ``custom_cnn``) it becomes ``none``.
        freeze: ``frozen`` (train the head only), ``last-n`` (plus the last ``last_n``
            backbone stages) or ``full``. Detectors: ``frozen`` freezes the trunk of an
            SSD-family detector and trains neck and head from cached trunk maps.
        head: head spec (None = the model's default head).
        batch_size: images per optimizer micro-step, over all processes.
        accumulate: micro-steps per optimizer step (gradient accumulation).
        class_weights: ``none``, ``auto`` (inverse frequency of the train split),
            ``dataset`` (``class_weights`` of dataset.yaml) or one weight per class.
        sampler: ``random`` or ``weighted`` (inverse class frequency, with replacement).
        amp: ``auto`` (bf16 on CUDA when supported, else fp16 on CUDA, off on CPU),
            ``bf16`` (also on CPU), ``fp16`` (CUDA) or ``off``.
        channels_last: ``auto`` (on for CUDA and CPU, where convolutions run faster in
            NHWC), ``on`` or ``off``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: DataLoader workers (None = min(4, CPUs)).
        val_fraction: share of each class carved from train when the dataset has no
            ``val_split`` records (seeded, recorded in dataset.lock).
        feature_cache: ``auto`` (on with ``freeze: frozen``), ``on`` or ``off`` (for
            classifiers: backbone features; for detectors: the trunk's feature maps). With
            ``freeze: last-n``, ``on`` caches the frozen stem's activations at the cut
            and fine-tunes the last ``last_n`` stages from them
            (:mod:`cvpipe.models.cut`); ``auto`` does so when every augmentation is
            cacheable (centre crop, optional flip: the default), else trains from images.
        feature_cache_dir: default ``$CVPIPE_HOME/features`` (~/.cache/cvpipe/features).
        feature_cache_max_mb: size budget of a ``last-n`` activation cache (train + val,
            all variants, storage dtype); above it the run trains from images instead
            (logged with the size).
        feature_backend: what runs the frozen backbone for the feature cache: ``auto``
            (ONNX Runtime on CPU when it pays off and matches PyTorch, else PyTorch),
            ``torch`` or ``onnxruntime`` (CPU only).
        pack: a pack directory from ``cvpipe pack`` to read pixels from.
        on_error: unreadable images: ``skip`` (reported) or ``fail``.
        max_skipped_fraction: stop when more than this share of an epoch's images failed.
        log_every: write a step row to metrics.jsonl every N optimizer steps.
        health: training-health collector and rules (``RUN/health/``), on by default.
        detector: detector settings (detect datasets; :class:`DetectorConfig`).
        freeze_pattern: freeze every parameter whose name matches this regex
            (``re.search``), e.g. ``model\\.backbone\\.`` (detectors; None = train all).
            With a detect dataset ``weights`` are the backbone's and ``early_stopping``
            monitors ``val.mAP`` unless set.
        tracking: also log the run to MLflow and/or TensorBoard
            (``--set tracking=mlflow,tensorboard``; :class:`~cvpipe.tracking.config.TrackingConfig`).
    """

    model: str | None = None
    weights: str | None = "imagenet"
    freeze: FreezeMode = "full"
    last_n: int = Field(default=1, ge=1)
    head: HeadSpec | None = None
    input_size: int | None = Field(default=None, ge=8)
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=32, ge=1)
    accumulate: int = Field(default=1, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    class_weights: Literal["none", "auto", "dataset"] | list[float] = "none"
    sampler: Literal["random", "weighted"] = "random"
    augment: AugmentConfig = AugmentConfig()
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    grad_clip: float | None = Field(default=None, gt=0)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    seed: int = 0
    device: str = "auto"
    workers: int | None = Field(default=None, ge=0)
    train_split: str = "train"
    val_split: str = "val"
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    feature_cache: Literal["auto", "on", "off"] = "auto"
    feature_cache_dir: str | None = None
    feature_cache_dtype: Literal["float16", "float32"] = "float16"
    feature_cache_max_mb: float = Field(default=4096.0, gt=0)
    feature_backend: Literal["auto", "torch", "onnxruntime"] = "auto"
    pack: str | None = None
    on_error: OnError = "skip"
    max_skipped_fraction: float = Field(default=0.5, ge=0, le=1)
    log_every: int = Field(default=1, ge=1)
    health: HealthConfig = HealthConfig()
    detector: DetectorConfig = DetectorConfig()
    freeze_pattern: str | None = None
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("weights")
    @classmethod
    def _none_weights(cls, v: str | None) -> str | None:
        return None if v is None or v.lower() in ("none", "null", "random", "") else v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda") and not (v.startswith("cuda:") and v[5:].isdigit()):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N (got {v!r})")
        return v

    @model_validator(mode="after")
    def _scheduler_fits(self) -> TrainConfig:
        if self.scheduler.name == "step" and any(
            m < 1 or m >= self.epochs + 1 for m in self.scheduler.milestones
        ):
            raise ValueError(
                f"scheduler.milestones {self.scheduler.milestones} must be epochs in 1..{self.epochs}"
            )
        if self.feature_cache == "on" and self.freeze == "full":
            raise ValueError(
                "feature_cache: on needs freeze: frozen or last-n (a fully trained backbone "
                "has no fixed part to cache)"
            )
        return self

    @property
    def model_name(self) -> str:
        """The model, once :func:`cvpipe.engine.defaults.apply_task_defaults` chose it."""
        if not self.model:
            from cvpipe.errors import ConfigError

            raise ConfigError("model: not set; give --model NAME (see 'cvpipe models')")
        return self.model

    @property
    def use_feature_cache(self) -> bool:
        """Train the head on cached pooled features of the frozen backbone."""
        return self.freeze == "frozen" and self.feature_cache != "off"

    @property
    def use_activation_cache(self) -> bool:
        """Fine-tune the last stages from cached activations of the frozen stem: with
        ``feature_cache: on``, or ``auto`` when every augmentation is cacheable (then the
        cache changes the speed, not what is trained)."""
        if self.freeze != "last-n" or self.feature_cache == "off":
            return False
        return self.feature_cache == "on" or self.augment.cacheable
