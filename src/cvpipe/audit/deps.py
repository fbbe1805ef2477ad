"""The audit's optional dependencies, imported when used, with the install line when missing."""

from __future__ import annotations

from typing import Any

from cvpipe.errors import MissingDependencyError

_HINT = "pip install 'cvpipe[audit]' (or pip install cleanlab scikit-learn faiss-cpu)"


def import_sklearn() -> Any:
    """``sklearn`` (nearest neighbours, k-fold, logistic regression).

    Raises:
        MissingDependencyError: scikit-learn is not installed.
    """
    try:
        import sklearn
        import sklearn.exceptions
        import sklearn.linear_model
        import sklearn.metrics
        import sklearn.model_selection
        import sklearn.neighbors
        import sklearn.pipeline
        import sklearn.preprocessing
        import sklearn.tree
    except ImportError:
        raise MissingDependencyError(f"cvpipe audit needs scikit-learn: {_HINT}") from None
    return sklearn


def import_cleanlab() -> Any:
    """``cleanlab.filter`` / ``cleanlab.rank`` (confident learning).

    Raises:
        MissingDependencyError: cleanlab is not installed.
    """
    try:
        import cleanlab
        import cleanlab.filter
        import cleanlab.rank
    except ImportError:
        raise MissingDependencyError(
            f"finding label errors needs cleanlab: {_HINT}; or --set labels.enabled=false"
        ) from None
    return cleanlab


def import_faiss() -> Any:
    """``faiss`` (exact inner-product search).

    Raises:
        MissingDependencyError: faiss-cpu is not installed.
    """
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError(
            f"duplicates.backend: faiss needs faiss-cpu: {_HINT}; or --set duplicates.backend=numpy"
        ) from None
    return faiss
