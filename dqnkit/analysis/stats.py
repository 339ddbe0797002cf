"""Small statistics for learning curves and final scores: NumPy only (no torch, no SciPy).

- :func:`moving_average`: trailing mean, the "100-episode moving average" of the training plots.
- :func:`bootstrap_ci`: percentile-bootstrap confidence interval of the mean.
- :func:`iqm`: interquartile mean, the aggregate recommended by Agarwal et al. (2021),
  "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (the rliable library).
- :func:`aggregate_curves`: several seeds' curves -> mean curve and bootstrap band on one env-step grid.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["moving_average", "bootstrap_ci", "iqm", "aggregate_curves", "AggregateCurve"]

# Bootstrap resamples are drawn in chunks so that memory stays below ~32 MiB of float64.
_CHUNK_ELEMENTS = 1 << 22


def moving_average(x: Sequence[float] | np.ndarray, window: int = 100) -> np.ndarray:
    """Trailing mean over the last ``window`` points, same length as ``x``.

    ``out[i] = mean(x[max(0, i - window + 1) : i + 1])``: the first ``window - 1`` points
    average over the partial window that exists so far (``out[0] == x[0]``), so the curve
    starts with the first episode instead of being padded with zeros or NaN (the tutorial
    notebooks pad with zeros, which draws a misleading ramp). NaN values propagate into
    every window that contains them.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    values = np.asarray(x, dtype=np.float64).ravel()
    if values.size == 0:
        return values.copy()
    csum = np.cumsum(values)
    out = csum.copy()
    out[window:] = csum[window:] - csum[:-window]
    counts = np.minimum(np.arange(1, values.size + 1), window)
    return out / counts


def _bootstrap_means(samples: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of the rows of ``samples`` (n, m) -> (n_boot, m)."""
    n, m = samples.shape
    means = np.empty((n_boot, m), dtype=np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * m))
    for begin in range(0, n_boot, chunk):
        end = min(n_boot, begin + chunk)
        idx = rng.integers(0, n, size=(end - begin, n))
        means[begin:end] = samples[idx].mean(axis=1)
    return means


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_boot: int = 10000,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values``.

    Draws ``n_boot`` resamples of size n with replacement from a private
    ``np.random.default_rng(seed)`` (the global NumPy state is never touched, so the
    same seed gives the same interval), and returns the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled means (Efron & Tibshirani 1993,
    ch. 13). With one value the interval is that value; with none it is ``(nan, nan)``.
    """
    _check_confidence(confidence)
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        return (float("nan"), float("nan"))
    if data.size == 1:
        return (float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    means = _bootstrap_means(data[:, None], n_boot, rng)[:, 0]
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(low), float(high))


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of the values (Agarwal et al. 2021).

    Same semantics as ``scipy.stats.trim_mean(values, 0.25)``, which is what rliable calls:
    ``k = floor(0.25 * n)`` values are cut from *each* end of the sorted values and the
    rest are averaged. When ``n`` is not a multiple of 4 the boundary falls inside a value
    and that value is kept whole (no fractional weighting), so slightly more than half is
    averaged: n=5 keeps 3, n=6 keeps 4, n<4 keeps all (plain mean). Empty -> nan.
    """
    data = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = data.size
    if n == 0:
        return float("nan")
    cut = int(0.25 * n)
    return float(data[cut : n - cut].mean())


class AggregateCurve(NamedTuple):
    """Several seeds on one grid: ``x``, the mean over seeds, and the bootstrap band of that mean."""

    x: np.ndarray
    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def aggregate_curves(
    curves: Sequence[tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]],
    n_points: int = 200,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int | None = 0,
) -> AggregateCurve:
    """Mean curve and percentile-bootstrap band over seeds, on a common x grid (env steps).

    Each ``(x, y)`` curve is sorted by x and linearly interpolated (``np.interp``) onto
    ``n_points`` evenly spaced points spanning the union of the curves' x ranges. A curve
    contributes only inside its own ``[x.min(), x.max()]`` (no extrapolation), so where a
    shorter seed has stopped, the mean and band use the seeds that reach that far; where
    only one seed covers a point the band collapses onto its value. Curves without a finite
    point are ignored; with none left, all four arrays are empty.
    """
    _check_confidence(confidence)
    cleaned: list[tuple[np.ndarray, np.ndarray]] = []
    for x, y in curves:
        xa = np.asarray(x, dtype=np.float64).ravel()
        ya = np.asarray(y, dtype=np.float64).ravel()
        if xa.shape != ya.shape:
            raise ValueError(f"x and y differ in length: {xa.size} vs {ya.size}")
        keep = np.isfinite(xa) & np.isfinite(ya)
        xa, ya = xa[keep], ya[keep]
        if xa.size == 0:
            continue
        order = np.argsort(xa, kind="stable")
        cleaned.append((xa[order], ya[order]))
    if not cleaned:
        empty = np.empty(0)
        return AggregateCurve(empty, empty.copy(), empty.copy(), empty.copy())

    lo = min(float(c[0][0]) for c in cleaned)
    hi = max(float(c[0][-1]) for c in cleaned)
    grid = np.linspace(lo, hi, n_points) if hi > lo else np.array([lo])
    ys = np.full((len(cleaned), grid.size), np.nan)
    for i, (xa, ya) in enumerate(cleaned):
        inside = (grid >= xa[0]) & (grid <= xa[-1])
        ys[i, inside] = np.interp(grid[inside], xa, ya)

    present = ~np.isnan(ys)
    counts = present.sum(axis=0)
    mean = np.where(counts > 0, np.nansum(ys, axis=0) / np.maximum(counts, 1), np.nan)
    ci_low = mean.copy()
    ci_high = mean.copy()
    rng = np.random.default_rng(seed)
    alpha = 1.0 - confidence
    # Bootstrap once per distinct set of seeds present (usually one or a handful of sets).
    masks, inverse = np.unique(present.T, axis=0, return_inverse=True)
    for k, mask in enumerate(masks):
        if mask.sum() < 2:
            continue
        cols = np.flatnonzero(inverse.ravel() == k)
        means = _bootstrap_means(ys[np.ix_(mask, cols)], n_boot, rng)
        q = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
        ci_low[cols], ci_high[cols] = q[0], q[1]
    return AggregateCurve(grid, mean, ci_low, ci_high)
