"""The churn model's probability from a fitted pipeline, computed on one native thread."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController


def one_thread():
    """Run native code (OpenMP in HistGradientBoosting, BLAS) on one thread.

    Our calls are many and small (folds, permutations, driver chunks); on a 2-core or shared
    host, OpenMP threads spin-waiting for a busy core made one HistGradientBoosting fit ~100x
    slower (measured: 0.16 s alone vs 37 s under load), while one thread loses little.
    """
    return _controller().limit(limits=1)


@functools.cache
def _controller() -> ThreadpoolController:
    """Found once: scanning the loaded libraries costs ~4 ms, a third of a single-row prediction
    (called first with a fitted pipeline at hand, so its native libraries are loaded)."""
    return ThreadpoolController()


def predict_proba(pipeline, X: pd.DataFrame) -> np.ndarray:
    """Probability of churn (class 1) per row."""
    with one_thread():
        proba = pipeline.predict_proba(X)
    classes = list(pipeline.classes_)
    return proba[:, classes.index(1)]
