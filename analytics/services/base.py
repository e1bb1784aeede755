"""The read-only base a serving process answers from, and the filtered views of it.

Built once per process from a Workspace; the services (and so the dashboard and the API) only
read it. What does not depend on the
filters (category codes, the history's month codes, orders of the base) is computed here once.
A selection is a boolean mask, cached by filter state with what is computed from it (per
worker: under gunicorn each worker has its own cache), so the several callbacks that one filter
change fires share one pass.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import numpy as np
import pandas as pd

from analytics import access, budget, filters
from analytics import columns as C
from analytics.metrics import kpis, planner, trend, value
from analytics.result import Unavailable
from analytics.services.errors import ModelPending
from analytics.workflow import Workspace

# Columns that describe today's scored customers only: in the history, a customer who left
# before the current window has none, so these filters keep today's customers of that level.
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


class ServedBase:
    """A Workspace as the services read it. Without a model (ws.model None: the first model is
    training) the views that need none are served as usual and the others raise ModelPending
    (require_model); `meta` is then empty and `threshold` and `planner` None."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.has_model = ws.model is not None
        self.meta = ws.model.meta if ws.model is not None else {}
        self.scored = ws.scored
        self.threshold = float(self.meta["threshold"]) if self.has_model else None
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
        # Built once per loaded base so a filter change never copies or re-parses the base.
        self._index = filters.LevelIndex(self.scored, self.filter_columns)
        self._history_index = self.dated = None
        if self.history is not None:
            self._history_index = filters.LevelIndex(self.history, self.filter_columns)
            by = C.SEGMENT if C.SEGMENT in self.history.columns else None
            self.dated = trend.DatedHistory(self.history, by=by)
        self.active = kpis.active_mask(self.scored)
        # A fixed random order of the base: a selection's first rows in it are its sample.
        self.random_order = np.random.default_rng(0).permutation(len(self.scored))
        self.planner = (
            planner.Planner(
                self.scored,
                threshold=self.threshold,
                window_months=self.meta.get("window_months", 1),
                base_churn_rate=self.base_churn_rate,
            )
            if self.has_model
            else None
        )
        self._at_risk_rows = value.at_risk_rows(self.scored)
        self._orders = _LRU(8)
        if C.P_CHURN in self.scored:
            self.descending(C.P_CHURN)  # the model views' order: sorted now, not on a request
        # The high-value line of the value x risk view: 75th percentile over active customers.
        self.value_cut = (
            float(np.nanpercentile(self.scored.loc[self.active, C.VALUE], 75))
            if C.VALUE in self.scored
            else None
        )
        self._masks = _LRU(64)  # 1 MB each on a million rows
        self._history_selections = _LRU(32)
        self._derived = _LRU(256)
        self._large = _LRU(8)

    @functools.cached_property
    def id_positions(self) -> pd.Series:
        """Row position of each customer id (as text; the first row of a repeated id)."""
        ids = self.scored[C.CUSTOMER_ID].astype(str)
        first = ~ids.duplicated().to_numpy()
        return pd.Series(np.flatnonzero(first), index=pd.Index(ids[first].to_numpy()))

    def require_model(self, what: str) -> None:
        """Raise ModelPending when there is no model yet: `what` (e.g. "the at-risk list")
        needs one."""
        if not self.has_model:
            raise ModelPending(what)

    @property
    def window_months(self) -> int:
        """The observation window of the churn label: the model's, else the settings' (what
        training will record)."""
        if self.has_model:
            return int(self.meta.get("window_months", 1))
        return int(self.ws.settings.window_months)

    def _history_with_segments(self) -> pd.DataFrame | None:
        if self.ws.history is None:
            return None
        history = self.ws.history
        added = {}
        if self.has_model:
            segments = self.ws.model.segments.assign(history).to_numpy()
            added[C.SEGMENT] = pd.Series(segments, index=history.index).astype(
                self.scored[C.SEGMENT].dtype
            )
        # Today's scores, by customer id; blank for customers who left before the window.
        current = [c for c in CURRENT_ONLY if c in self.scored.columns]
        if current:
            ids = history[C.CUSTOMER_ID].astype(str).to_numpy()
            rows = self.id_positions.reindex(ids).to_numpy(dtype=float, na_value=np.nan)
            known = ~np.isnan(rows)
            take = np.where(known, rows, 0).astype(np.int64)
            for column in current:
                scores = self.scored[column].to_numpy()[take]
                added[column] = pd.Categorical(
                    np.where(known, scores, None), dtype=self.scored[column].dtype
                )
        # assign, not copy(): copy-on-write shares the other columns (380 MB on 3.2M rows).
        return history.assign(**added)

    # -- filter state --------------------------------------------------------------------------
    def state(self, query: str | None) -> filters.FilterState:
        """The selection `query` means, cut to the request's scope (access.scoped): every view,
        list, export and count goes through here, so a manager's scope holds everywhere."""
        budget.check()
        state = self.requested(query)
        scope = access.current_scope()
        if scope is None:
            return state
        return dataclasses.replace(state, levels=access.within(state.levels, scope))

    def requested(self, query: str | None) -> filters.FilterState:
        """The filters `query` asks for, before the scope: what the filter controls show."""
        return filters.from_query(query or "", self.allowed)

    def levels_for(self, scope: access.Scope | None) -> dict[str, list[str]]:
        """The filter levels a user with `scope` may pick."""
        return access.scoped_levels(self.allowed, scope)

    def scope_problem(self, scope: access.Scope | None) -> str | None:
        """Why `scope` selects nobody in this base (the user is then refused), else None."""
        if scope is None:
            return None
        if scope.column not in self.allowed:
            return f"the scope's column {scope.column!r} is not a filterable column of this data"
        if not set(scope.values) & set(self.allowed[scope.column]):
            return f"no customer of this data has {scope}"
        return None

    def in_scope(self, row: int) -> bool:
        """Whether the customer at position `row` of `scored` is inside the request's scope."""
        scope = access.current_scope()
        return scope is None or str(self.scored[scope.column].iloc[row]) in scope.values

    def mask(self, query: str | None) -> np.ndarray:
        """Boolean row mask over `scored` of the customers the selection means (read-only)."""
        state = self.state(query)
        return self._masks.get(state.key(), lambda: _readonly(self._index.mask(state)))

    def count(self, query: str | None) -> int:
        return int(np.count_nonzero(self.mask(query)))

    def view(self, query: str | None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The scored customers the selection means; only `columns` (those present) if given,
        which on a million rows costs a fraction of copying every column. Not cached: callers
        cache what they compute from it (a million-row copy per filter state would pile up)."""
        frame = self.scored
        if columns is not None:
            frame = frame[[c for c in dict.fromkeys(columns) if c in frame.columns]]
        return frame if self.state(query).is_empty else frame[self.mask(query)]

    def kpis(self, query: str | None) -> dict:
        """kpis.kpis of the selection, from the columns it reads only."""
        return self.cached("kpis", query, lambda: kpis.kpis(self.view(query, kpis.KPI_COLUMNS)))

    def at_risk_rows(self, query: str | None) -> np.ndarray | Unavailable:
        """Positions in `scored` of the selection's high-value at-risk list, in its order: the
        base's list, ordered once, restricted to the selection."""
        rows = self._at_risk_rows
        if isinstance(rows, Unavailable) or self.state(query).is_empty:
            return rows
        return rows[self.mask(query)[rows]]

    def at_risk(self, query: str | None) -> pd.DataFrame | Unavailable:
        """value.high_value_at_risk of the selection."""
        rows = self.at_risk_rows(query)
        return rows if isinstance(rows, Unavailable) else self.scored.iloc[rows]

    def ranked(self, query: str | None, column: str) -> np.ndarray:
        """Positions in `scored` of the selection, by `column` descending (ties in table
        order)."""
        order = self.descending(column)
        if self.state(query).is_empty:
            return order
        return order[self.mask(query)[order]]

    def descending(self, column: str) -> np.ndarray:
        """Positions ordering the base by `column`, descending (ties in table order), computed
        once: a selection's order is this one restricted to it."""
        return self._orders.get(
            column,
            lambda: _readonly(
                value.descending(self.scored[column].to_numpy(dtype=float, na_value=np.nan))
            ),
        )

    def history_selection(self, query: str | None) -> trend.DatedSelection | None:
        """Counts of the past and present customers the filters' levels select, for the monthly
        trend and the cohorts (which apply the tenure range month by month: `tenure`)."""
        if self.dated is None:
            return None
        levels = filters.FilterState(levels=self.state(query).levels)

        def make():
            return self.dated.select(self._history_index.mask(levels), base_as_of=True)

        return self._history_selections.get(levels.key(), make)

    def tenure(self, query: str | None) -> tuple[float | None, float | None] | None:
        """The tenure filter's (min, max), None without one."""
        state = self.state(query)
        if state.tenure_min is None and state.tenure_max is None:
            return None
        return state.tenure_min, state.tenure_max

    def score_filters(self, query: str | None) -> list[str]:
        """The active filters on today's scores (risk band, value tier): only today's customers
        have them, so a dated view of such a selection has no past departures."""
        state = self.state(query)
        return [c.replace("_", " ") for c in CURRENT_ONLY if state.levels.get(c)]

    def history_note(self, query: str | None) -> str:
        names = " and ".join(self.score_filters(query))
        if not names:
            return ""
        return (
            f"The {names} is today's score: only today's customers have one, and none of them "
            "had left before the current window, so the trend shows that window only."
        )

    def cached(
        self,
        name: str,
        query: str | None,
        make: Callable[[], object],
        *extra: Hashable,
        large: bool = False,
    ):
        """Cache a derived result (a figure's data) by view and extra arguments. `large`: it
        holds arrays as long as the selection (a few MB on a million rows), so only the last
        few of those are kept: memory stays bounded, and freed memory is reused."""
        cache = self._large if large else self._derived
        return cache.get((name, self.state(query).key(), *extra), make)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # shared by every callback of a selection: never changed
    return array


def _levels(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return list(series.cat.categories)
    return sorted(series.dropna().astype(str).unique())
