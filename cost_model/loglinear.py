"""``log y = a + b log x`` by least squares: FLOPs baselines, few-shot calibration, proxy-device rescaling.

One implementation so that the baselines and ``adapt`` fall back to the same
slope when the data cannot support one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_loglinear"]


def fit_loglinear(lx: np.ndarray, ly: np.ndarray, ridge: float = 0.0) -> tuple[float, float]:
    """``(a, b)`` minimising ``Σ (a + b·lx - ly)² + ridge·(b - 1)²`` on logs ``lx``, ``ly``.

    ``ridge`` shrinks the slope towards 1 (latency proportional to x), so that a
    handful of samples cannot flip a ranking. Below 4 samples, or when every
    ``lx`` is equal, ``b = 1`` and only ``a`` is fitted.
    """
    x, y = np.asarray(lx, float), np.asarray(ly, float)
    if x.size < 4 or np.ptp(x) == 0:
        return float(np.mean(y - x)), 1.0
    xc, yc = x - x.mean(), y - y.mean()
    b = float((xc @ yc + ridge) / (xc @ xc + ridge))
    return float(y.mean() - b * x.mean()), b
