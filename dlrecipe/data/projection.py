"""ZCA whitening and PCA: the covariance of the flattened training inputs, and its eigenvectors.

ZCA: ``W = U diag(1 / sqrt(lambda + epsilon)) U^T`` from ``U diag(lambda) U^T``, the training covariance,
with ``epsilon = ZCA_EPSILON * mean(lambda)`` (relative, so near-constant features are not blown up).
PCA keeps the first N eigenvectors, each signed so that its largest entry is positive. Both need the
full covariance: refused beyond ``MAX_COVARIANCE_FEATURES`` features. NumPy only.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from dlrecipe.data.moments import array_chunks, check_finite
from dlrecipe.errors import RecipeError

ZCA_EPSILON = 1e-2  # times the mean eigenvalue of the training covariance
MAX_COVARIANCE_FEATURES = 4096  # ZCA and PCA: a 4096 x 4096 float64 covariance is 128 MiB


def too_many(path: str, what: str, features: int) -> RecipeError:
    """The error for ZCA or PCA (``what``, at recipe path ``path``) on examples of too many ``features``."""
    fix = ("use normalize: standardize or per_channel" if path == "data.normalize"
           else "remove data.pca, or use smaller inputs")
    return RecipeError.one(path, f"Received: {what} on examples of {features} features. {what.split(':')[0].upper()} "
                           f"needs the {features} x {features} covariance; dlrecipe allows at most "
                           f"{MAX_COVARIANCE_FEATURES} features ({math.isqrt(MAX_COVARIANCE_FEATURES)}x"
                           f"{math.isqrt(MAX_COVARIANCE_FEATURES)} grey or 32x32x3 colour images). Fix: {fix} "
                           "(e.g. resize the images when you build the data).")


def _covariance(x: np.ndarray, transform: Callable[[np.ndarray], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) covariance of the flattened examples, float64, over chunks.

    ``transform`` (optional) maps a chunk of raw examples to the features to use (e.g. normalized).
    Sums are taken around a shift (the first chunk's mean), so large offsets do not cancel precision.
    """
    n, shift, total, cross = 0, None, None, None
    for chunk in array_chunks(x):
        if transform is not None:
            chunk = transform(chunk)
        flat = np.asarray(chunk, dtype=np.float64).reshape(len(chunk), -1)
        if x.dtype.kind == "f":
            check_finite(flat)
        if shift is None:
            shift = flat.mean(axis=0)
            total, cross = np.zeros_like(shift), np.zeros((len(shift), len(shift)))
        flat -= shift
        total += flat.sum(axis=0)
        cross += flat.T @ flat
        n += len(flat)
    assert shift is not None and cross is not None
    d = total / n
    return shift + d, cross / n - np.outer(d, d)


def _eigen(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing, >= 0) and eigenvectors (columns, largest entry positive) of ``cov``."""
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values, kind="stable")[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    signs = np.where(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])] < 0, -1.0, 1.0)
    return values, vectors * signs


def fit_zca(x: np.ndarray) -> dict:
    """The ZCA statistics of the training inputs ``x``: ``{"kind": "zca", "shape", "epsilon", "mean", "matrix"}``.

    Raises:
        RecipeError: at ``data.normalize`` when the examples have more than ``MAX_COVARIANCE_FEATURES`` features.
    """
    features = math.prod(x.shape[1:])
    if features > MAX_COVARIANCE_FEATURES:
        raise too_many("data.normalize", "normalize: zca", features)
    mean, cov = _covariance(x)
    values, vectors = _eigen(cov)
    average = float(values.mean())
    epsilon = ZCA_EPSILON * average if average > 0 else 1.0
    matrix = (vectors / np.sqrt(values + epsilon)) @ vectors.T
    return {"kind": "zca", "shape": list(x.shape[1:]), "epsilon": epsilon, "epsilon_relative": ZCA_EPSILON,
            "mean": mean.tolist(), "matrix": matrix.astype(np.float32)}


def fit_pca(n_components: int, x_train: np.ndarray, transform: Callable[[np.ndarray], Any] | None = None) -> dict:
    """The first ``n_components`` principal components of the flattened training inputs.

    Args:
        n_components: N, ``data.pca``.
        x_train: the training inputs, ``(N, ...)``.
        transform: maps a chunk of ``x_train`` to the features to analyse (the fitted normalization).

    Returns:
        ``{"n_components", "mean", "components" (float32, features x N), "explained_variance",
        "explained_variance_ratio"}``.

    Raises:
        RecipeError: at ``data.pca`` when N exceeds the number of features or the features are too many.
    """
    features = math.prod(x_train.shape[1:])
    check_pca(n_components, features)
    mean, cov = _covariance(x_train, transform)
    values, vectors = _eigen(cov)
    total = float(values.sum())
    kept = values[:n_components]
    return {"n_components": int(n_components), "mean": mean.tolist(),
            "components": vectors[:, :n_components].astype(np.float32),
            "explained_variance": kept.tolist(),
            "explained_variance_ratio": (kept / total).tolist() if total > 0 else [0.0] * n_components}


def check_pca(n_components: int, features: int) -> None:
    """Refuse ``pca: n_components`` on examples of ``features`` features: too few, or too many for the covariance."""
    if n_components > features:
        raise RecipeError.one("data.pca", f"Received: pca={n_components}, but the examples have only {features} "
                              f"features. Expected at most {features}. Fix: set data.pca to {features} or fewer, "
                              "or remove it.")
    if features > MAX_COVARIANCE_FEATURES:
        raise too_many("data.pca", f"pca: {n_components}", features)

