"""Batched inference for a trained run: images or files in, per-image outputs out.

A predictor wraps a trained model with its preprocessing (from the run's model card) and
streams over any number of image files with bounded memory: files are decoded (JPEG at
reduced size; turned by their EXIF orientation when the model was trained on a dataset
imported with ``--exif apply``, ``card.exif``) and transformed in an optional DataLoader worker pool, run through the
network one batch at a time under ``torch.inference_mode``, and yielded one result per
file, in input order, as soon as their batch is done. An unreadable file yields a result
with ``error`` set instead of stopping the stream.

The run's task chooses the predictor (:meth:`cvpipe.tasks.base.Task.predictor`):
:class:`cvpipe.inference.classify.Predictor` (class probabilities) for classify and count,
:class:`cvpipe.inference.detect.DetectionPredictor` (boxes) for detect.

Example:
    >>> p = BasePredictor.from_run("runs/bins")  # doctest: +SKIP
    >>> for r in p.predict_paths(["a.jpg", "b.jpg"]):  # doctest: +SKIP
    ...     print(r.path, r.error or p.card.classes[int(r.output.argmax())])
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvpipe.errors import CheckpointError
from cvpipe.images import ImageReadError, decode
from cvpipe.orientation import Orient

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from cvpipe.engine.runs import ModelCard

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PathResult:
    """The outcome for one input file.

    Attributes:
        index: position of the file in the input sequence.
        path: the file.
        output: the model output for the image (class probabilities [C] for
            classifiers and counters), or None when the file could not be read.
        error: why the file could not be predicted (``"truncated: ..."``), else None.
    """

    index: int
    path: Path
    output: Any = None
    error: str | None = None


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class BasePredictor:
    """What every predictor shares: model + card, decoding, batching, streaming.

    Subclasses implement :meth:`infer` (a batch tensor → one output per image).

    Args:
        model: the trained network (any ``nn.Module``); put in eval mode here.
        card: the run's model card (``task``, ``classes``, ``preprocess``).
        device: ``cpu``, ``cuda``, ``cuda:1`` or ``auto``.
    """

    def __init__(self, model: torch.nn.Module, card: ModelCard, device: str = "cpu") -> None:
        self.card = card
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.transform = card.preprocess.eval_transform()
        self.draft = int(card.preprocess.resize_size)

    @classmethod
    def from_run(cls, run: str | Path, which: str = "best", device: str = "cpu") -> BasePredictor:
        """Load a run's checkpoint and return the predictor its task chooses.

        Args:
            run: run directory (with model_card.json and checkpoints/).
            which: ``best`` or ``last`` checkpoint.
            device: see the class arguments.

        Raises:
            CheckpointError: this class does not handle the run's task (e.g.
                ``Predictor.from_run`` on a detect run); errors of
                :func:`cvpipe.inference.loading.load_model` pass through.
        """
        from cvpipe.inference.loading import load_model
        from cvpipe.tasks.registry import get_task

        model, card = load_model(run, which=which)
        pred = get_task(card.task).predictor(model, card, device=device)
        if not isinstance(pred, cls):
            raise CheckpointError(
                f"{run}: a {card.task!r} run needs {type(pred).__name__}, not {cls.__name__}"
            )
        log.info(
            "loaded %s (%s, %d classes) from %s", card.model, card.task, len(card.classes), run
        )
        return pred

    # -- one batch ----------------------------------------------------------------------
    def infer(self, x: torch.Tensor) -> list[Any]:  # pragma: no cover - abstract
        """Run the network on a preprocessed batch [N, 3, S, S]; one output per image."""
        raise NotImplementedError

    def load(self, path: str | Path) -> Image.Image:
        """Decode one file as RGB at (at least) the preprocessing's resize size.

        Raises:
            ImageReadError: missing, unreadable, truncated or corrupt file.
        """
        return decode(
            path, "RGB", draft=(self.draft, self.draft), orientation=self.card.orientation
        )

    # -- streaming ----------------------------------------------------------------------
    def predict_paths(
        self,
        paths: Sequence[str | Path],
        batch_size: int = 32,
        workers: int = 0,
        orientations: Sequence[Orient] | None = None,
    ) -> Iterator[PathResult]:
        """Predict many files, yielding one :class:`PathResult` per file in input order.

        Memory stays bounded by ``batch_size`` (times the loader's prefetch) whatever the
        number of files: nothing is accumulated here.

        Args:
            paths: image files.
            batch_size: images per forward pass.
            workers: DataLoader worker processes decoding in parallel (0: in this process).
            orientations: per file, how to orient its decode (``Record.orientation`` of
                dataset records, so pixels match their labels); default: the card's
                (``"exif"`` for ``exif: apply`` cards, else the stored pixels).
        """
        import torch
        from torch.utils.data import DataLoader

        if not paths:
            return
        orients = file_orientations(paths, orientations, self.card.orientation)
        dataset: Any = _PathDataset(
            list(paths), self.transform, self.draft, orients
        )  # map-style, duck-typed
        loader: DataLoader[Any] = DataLoader(
            dataset,
            batch_size=max(1, batch_size),
            shuffle=False,
            num_workers=max(0, workers),
            collate_fn=_collate,
            pin_memory=self.device.startswith("cuda"),
        )
        for indices, x, errors in loader:
            outputs: list[Any] = []
            if x is not None:
                with torch.inference_mode():
                    outputs = self.infer(x.to(self.device, non_blocking=True))
            it = iter(outputs)
            for i in indices:
                if i in errors:
                    yield PathResult(i, Path(paths[i]), None, errors[i])
                else:
                    yield PathResult(i, Path(paths[i]), next(it), None)


class _PathDataset:
    """Map-style dataset: index → (index, tensor | None, error | None).

    Holds only the paths and the transform (never the model), so worker processes stay
    light whatever the start method.
    """

    def __init__(
        self, paths: list[str | Path], transform: Any, draft: int, orients: list[Orient]
    ) -> None:
        self.paths = paths
        self.transform = transform
        self.draft = draft
        self.orients = orients

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        try:
            im = decode(
                self.paths[i], "RGB", draft=(self.draft, self.draft), orientation=self.orients[i]
            )
            return i, self.transform(im), None
        except ImageReadError as exc:
            return i, None, f"{exc.kind}: {exc.message}"
        except (OSError, ValueError) as exc:  # a decoder error surfacing in the transform
            return i, None, f"corrupt: cannot decode image: {exc}"


def record_orientations(predictor: Any, records: Sequence[Any]) -> dict[str, Any]:
    """``predict_paths`` keywords that decode dataset records in their own frame (the one
    their labels and boxes are in: ``Record.orientation``), whatever the model card says;
    empty when nothing would turn, so duck-typed predictors need not know the keyword."""
    orients = [r.orientation for r in records]
    card = getattr(predictor, "card", None)
    if any(o is not None for o in orients) or getattr(card, "exif", "keep") == "apply":
        return {"orientations": orients}
    return {}


def file_orientations(
    paths: Sequence[Any], orientations: Sequence[Orient] | None, default: Orient
) -> list[Orient]:
    """One orientation per path: the given ones, or the card's default for every file."""
    if orientations is None:
        return [default] * len(paths)
    if len(orientations) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(orientations)} orientations")
    return list(orientations)


def _collate(batch: list[tuple[int, Any, str | None]]) -> tuple[list[int], Any, dict[int, str]]:
    import torch

    indices = [b[0] for b in batch]
    errors = {b[0]: b[2] for b in batch if b[2] is not None}
    good = [b[1] for b in batch if b[2] is None]
    return indices, (torch.stack(good) if good else None), errors


def expand_inputs(items: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Turn files, folders (searched recursively for images) and globs into image files.

    Args:
        items: command-line inputs.

    Returns:
        ``(files in a stable order, [(input, problem), ...])`` for inputs that matched
        nothing or do not exist.

    Raises:
        ConfigError: an http(s) URL (not supported yet).
    """
    import glob

    from cvpipe.errors import ConfigError
    from cvpipe.images import is_image_file

    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        if item.lower().startswith(("http://", "https://")):
            raise ConfigError(
                f"{item}: image URLs are not supported by 'cvpipe predict' yet; download the image and pass the file"
            )
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f))
            if not found:
                problems.append((item, "folder holds no image files"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(f) for f in glob.glob(item, recursive=True) if Path(f).is_file())
            if not found:
                problems.append((item, "pattern matched no files"))
            files.extend(found)
        else:
            problems.append((item, "file not found"))
    return files, problems
