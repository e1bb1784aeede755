"""The read-only data a dashboard process serves, and the filtered views of it.

Built once per process from a Workspace; callbacks only read it. Filtered views are cached by
filter state (per worker: under gunicorn each worker has its own cache), so the several
callbacks that one filter change fires share one filtering pass.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics import filters
from analytics.workflow import Workspace

# Columns that describe today's scored customers only: past months cannot be filtered by them.
CURRENT_ONLY = (C.RISK_BAND, C.VALUE_TIER)
# The at-risk list and the contact list: METRICS.md's columns plus the top three reasons.
GRID_FIELDS = (
    C.CUSTOMER_ID,
    C.P_CHURN,
    C.RISK_BAND,
    C.SEGMENT,
    C.MONTHLY_REVENUE,
    C.CLV,
    C.VALUE,
    C.EXPECTED_LOSS,
    C.TENURE,
    *C.REASONS,
)


class _LRU:
    """A small thread-safe LRU cache; gunicorn threads may share a worker."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class DashboardData:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.meta = ws.model.meta
        self.scored = ws.scored
        self.threshold = float(self.meta["threshold"])
        self.filter_columns = filters.filterable_columns(self.scored, ws.table.categorical)
        self.allowed = {
            col: [str(v) for v in _levels(self.scored[col])] for col in self.filter_columns
        }
        tenure = self.scored[C.TENURE]
        self.tenure_range = (float(np.nanmin(tenure)), float(np.nanmax(tenure)))
        self.base_churn_rate = (
            float(self.scored[C.CHURNED].mean()) if C.CHURNED in self.scored else None
        )
        self.grid_fields = [c for c in GRID_FIELDS if c in self.scored.columns]
        self.history = self._history_with_segments()
        self._views = _LRU(64)
        self._history_views = _LRU(32)
        self._derived = _LRU(256)

    def _history_with_segments(self) -> pd.DataFrame | None:
        if self.ws.history is None:
            return None
        history = self.ws.history.copy()
        history[C.SEGMENT] = self.ws.model.segments.assign(history).to_numpy()
        history[C.SEGMENT] = history[C.SEGMENT].astype(self.scored[C.SEGMENT].dtype)
        return history

    # -- filter state --------------------------------------------------------------------------
    def state(self, query: str | None) -> filters.FilterState:
        return filters.from_query(query or "", self.allowed)

    def view(self, query: str | None) -> pd.DataFrame:
        """The scored customers the selection means."""
        state = self.state(query)
        return self._views.get(state.key(), lambda: filters.apply(self.scored, state))

    def history_view(self, query: str | None) -> pd.DataFrame | None:
        """Past and present customers under the filters that apply to the past (see note)."""
        if self.history is None:
            return None
        state = self.state(query)
        levels = {c: v for c, v in state.levels.items() if c not in CURRENT_ONLY}
        past = filters.FilterState(levels=levels)
        return self._history_views.get(past.key(), lambda: filters.apply(self.history, past))

    def history_note(self, query: str | None) -> str:
        state = self.state(query)
        ignored = [c for c in CURRENT_ONLY if state.levels.get(c)]
        if state.tenure_min is not None or state.tenure_max is not None:
            ignored.append("tenure")
        if not ignored:
            return ""
        names = ", ".join(c.replace("_", " ") for c in ignored)
        return (
            f"The {names} filter describes today's customers, so past months are shown for the "
            "other filters only."
        )

    def cached(self, name: str, query: str | None, make: Callable[[], object], *extra: Hashable):
        """Cache a derived result (a figure's data) by view and extra arguments."""
        return self._derived.get((name, self.state(query).key(), *extra), make)


def _levels(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return list(series.cat.categories)
    return sorted(series.dropna().astype(str).unique())
