"""Statistics of training inputs in float64: min and max, or mean and std, per feature or per channel.

Arrays are read in chunks of about ``CHUNK_VALUES`` values and the batches of a streamed split one by one;
the moments of the chunks are merged exactly (Chan et al.), so both give the statistics of the whole split
up to float64 rounding. NumPy only; ``data.preprocess`` builds on it.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np

from dlrecipe.build.preprocessing import safe_scale
from dlrecipe.errors import RecipeError

CHUNK_VALUES = 1 << 22  # values per float64 chunk while fitting (32 MiB)


def chunks(x: np.ndarray) -> range:
    """The start of each chunk of ``x`` (whole examples, about ``CHUNK_VALUES`` values each)."""
    per_example = max(1, math.prod(x.shape[1:]))
    return range(0, len(x), max(1, CHUNK_VALUES // per_example))


def array_chunks(x: np.ndarray) -> Iterator[np.ndarray]:
    """``x`` in the chunks of ``chunks``, as views."""
    step = chunks(x).step
    return (x[start:start + step] for start in chunks(x))


def check_finite(chunk: np.ndarray) -> None:
    """Refuse NaN and infinite training inputs, which would make every statistic NaN."""
    if not np.all(np.isfinite(chunk)):
        raise RecipeError.one("data.normalize", "Received: training inputs holding NaN or infinite values. Expected "
                              "finite numbers; the normalization statistics would be NaN. Fix: clean the data.")


def fit_moments(kind: str, batches: Iterable[np.ndarray], ndim: int, floats: bool) -> dict:
    """The statistics of ``minmax``, ``standardize`` or ``per_channel`` over ``batches``.

    Args:
        kind: the normalization; ``minmax`` takes the min and max per feature, any other kind the mean
            and std per feature (``per_channel``: per channel, the last axis, over all other axes).
        batches: arrays of one per-example shape (chunks of the training split, or its batches).
        ndim: the number of axes of a batch.
        floats: the inputs are floats (then checked to be finite).

    Returns:
        ``{"kind", "axis", "min", "max"}`` or ``{"kind", "axis", "mean", "std"}``, JSON-able.
    """
    if kind == "minmax":
        low = high = None
        for b in batches:
            b_low, b_high = np.min(b, axis=0).astype(np.float64), np.max(b, axis=0).astype(np.float64)
            low = b_low if low is None else np.minimum(low, b_low)
            high = b_high if high is None else np.maximum(high, b_high)
        if floats:
            check_finite(low)
            check_finite(high)
        return {"kind": "minmax", "axis": list(range(1, ndim)), "min": low.tolist(), "max": high.tolist()}
    per_channel = kind == "per_channel"
    mean, std = _merge_moments(batches, per_channel, ndim)
    axis = [ndim - 1] if per_channel else list(range(1, ndim))
    return {"kind": kind, "axis": axis, "mean": mean.tolist(), "std": safe_scale(std).tolist()}


def _merge_moments(parts: Iterable[np.ndarray], per_channel: bool, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """The moments of ``parts`` (arrays of one per-example shape), merged exactly chunk by chunk."""
    axes = tuple(range(ndim - 1)) if per_channel else (0,)
    count, mean, m2 = 0, None, None
    for raw in parts:
        chunk = raw.astype(np.float64)
        if raw.dtype.kind == "f":
            check_finite(chunk)
        n = chunk.size // math.prod(chunk.shape[a] for a in range(chunk.ndim) if a not in axes)
        c_mean = chunk.mean(axis=axes)
        c_m2 = np.square(chunk - np.expand_dims(c_mean, axes)).sum(axis=axes)
        if mean is None:
            count, mean, m2 = n, c_mean, c_m2
            continue
        delta = c_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + c_m2 + np.square(delta) * (count * n / total)
        count = total
    assert mean is not None and m2 is not None
    return mean, np.sqrt(m2 / count)
