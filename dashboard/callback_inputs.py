"""What a Dash callback request may carry, checked before Dash runs the callback.

Dash passes whatever JSON a client posts to /_dash-update-component straight to the callback
functions: a string where a number belongs, a list where a dict belongs, or a grid filter
model with 100,000 conditions. Here one declaration per (component, property) says what each
input may be (pydantic, strict: no "1" for 1, no true for 1), with bounds on everything a
client can make large (text, lists, filter and sort models, page sizes); the request's shape is
checked against the callback's own declaration (its inputs, state and outputs). A request that
fails is a 400 naming the input, before any callback code runs.

`CHECKS` is complete by construction: tests/test_callback_fuzz.py fails when a callback reads
an input that has no declaration here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from analytics import filters
from dashboard import ids, layout

MAX_TEXT = 2_000  # a URL query, a filter text, a customer id
MAX_ITEMS = 5_000  # levels picked in one filter, fields of a pattern-matching input
MAX_GRID_COLUMNS = 64  # a grid's filter or sort model names at most this many columns
# AG Grid offers two conditions per column filter by default (filterParams.maxNumConditions)
MAX_CONDITIONS = 2
MAX_PAGE_ROWS = 1_000  # one infinite-model block (the grid asks for 100 at a time)
MAX_ROW = 100_000_000
MAX_CLICKS = 2**31 - 1


def _finite(x: float) -> float:
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError("expected a finite number")
    return x


Text = Annotated[StrictStr, Field(max_length=MAX_TEXT)]
Number = Annotated[StrictInt | StrictFloat, AfterValidator(_finite)]
Clicks = Annotated[StrictInt, Field(ge=0, le=MAX_CLICKS)]
Scalar = Text | Number | StrictBool


class _Part(BaseModel):
    # AG Grid and the renderer add keys this app does not read: ignored, not refused.
    model_config = ConfigDict(extra="ignore")


class Condition(_Part):
    filterType: Text | None = None
    type: Text | None = None
    filter: Text | Number | None = None
    filterTo: Text | Number | None = None
    # so that a combined filter never passes as a simple one with its conditions ignored
    operator: None = None
    conditions: None = None


class Combined(_Part):
    filterType: Text | None = None
    operator: Literal["AND", "OR"]
    conditions: Annotated[list[Condition], Field(max_length=MAX_CONDITIONS)]


FilterModel = Annotated[
    dict[Annotated[StrictStr, Field(max_length=200)], Combined | Condition],
    Field(max_length=MAX_GRID_COLUMNS),
]


class Sort(_Part):
    colId: Annotated[StrictStr, Field(max_length=200)]
    sort: Literal["asc", "desc"] | None = None


class RowsRequest(_Part):
    """AG Grid's infinite-model request: one block of rows, its sort and its filters."""

    startRow: Annotated[StrictInt, Field(ge=0, le=MAX_ROW)]
    endRow: Annotated[StrictInt, Field(ge=0, le=MAX_ROW)]
    sortModel: Annotated[list[Sort], Field(max_length=MAX_GRID_COLUMNS)] = []
    filterModel: FilterModel | None = None

    @model_validator(mode="after")
    def _one_block(self):
        if not 0 < self.endRow - self.startRow <= MAX_PAGE_ROWS:
            raise ValueError(f"endRow - startRow must be 1 to {MAX_PAGE_ROWS:,}")
        return self


class ColumnState(_Part):
    colId: Annotated[StrictStr, Field(max_length=200)]
    sort: Literal["asc", "desc"] | None = None
    sortIndex: Annotated[StrictInt, Field(ge=0, le=MAX_GRID_COLUMNS)] | None = None


class CellClick(_Part):
    rowId: Text | StrictInt | None = None


class Point(_Part):
    label: Scalar


class ClickData(_Part):
    points: Annotated[list[Point], Field(max_length=100)] = []


def _one_of(choices: Iterable, what: str) -> Callable[[Any], Any]:
    allowed = frozenset(choices)

    def check(x):
        if x not in allowed:
            raise ValueError(f"not one of the offered {what}")
        return x

    return check


def _between(lo: float, hi: float):
    def check(x):
        if not lo <= x <= hi:
            raise ValueError(f"expected a number from {lo:g} to {hi:g}")
        return x

    return check


def _range(x: list):
    if len(x) != 2 or x[0] > x[1]:
        raise ValueError("expected [low, high] with low <= high")
    return x


def _only_columns(fields: Iterable[str]) -> Callable[[Any], Any]:
    """A grid's filter, sort or column model may name only the grid's own columns."""
    known = frozenset(fields)

    def check(x):
        if isinstance(x, RowsRequest):
            named = [s.colId for s in x.sortModel] + list(x.filterModel or {})
        elif isinstance(x, dict):
            named = list(x)
        else:
            named = [c.colId for c in x]
        unknown = next((c for c in named if c not in known), None)
        if unknown is not None:
            raise ValueError(f"the grid has no column {unknown[:40]!r}")
        return x

    return check


def declarations(data) -> dict[tuple[str, str], Any]:
    """(component id, property) -> the type its value must have (None is always allowed: an
    input the renderer has no value for yet). A pattern-matching id is keyed by
    `pattern:<type>`."""
    tabs = [k for k, _ in layout.TABS]
    text = Text | None
    # A query with every level of every filter selected, plus the view options, must pass.
    everything = filters.FilterState({c: tuple(v) for c, v in data.allowed.items()}, 0.0, 0.0)
    query = Annotated[StrictStr, Field(max_length=len(filters.to_query(everything)) + MAX_TEXT)]
    grid = _only_columns(data.grid_fields)
    return {
        (ids.URL, "search"): query,
        (ids.URL, "pathname"): text,
        (ids.URL, "hash"): text,
        (ids.FILTER_QUERY, "data"): query,
        (ids.TABS, "active_tab"): Annotated[StrictStr, AfterValidator(_one_of(tabs, "tabs"))],
        (ids.RESET, "n_clicks"): Clicks,
        (ids.TENURE, "value"): Annotated[list[Number], AfterValidator(_range)],
        (ids.DOUGHNUT, "clickData"): ClickData,
        (ids.TREND_SPLIT, "value"): StrictBool,
        (ids.FACTOR, "value"): Annotated[
            StrictStr, AfterValidator(_one_of(layout.factor_options(data), "factors"))
        ],
        (ids.AT_RISK_GRID, "filterModel"): Annotated[FilterModel, AfterValidator(grid)],
        (ids.AT_RISK_GRID, "getRowsRequest"): Annotated[RowsRequest, AfterValidator(grid)],
        (ids.AT_RISK_GRID, "columnState"): Annotated[
            list[ColumnState], Field(max_length=MAX_GRID_COLUMNS), AfterValidator(grid)
        ],
        (ids.AT_RISK_GRID, "cellClicked"): CellClick,
        (ids.AT_RISK_EXPORT, "n_clicks"): Clicks,
        (ids.PLAN_SAVE_RATE, "value"): Number,
        (ids.PLAN_COST, "value"): Number,
        (ids.PLAN_MARGIN, "value"): Number,
        (ids.PLAN_DISCOUNT, "value"): Number,
        (ids.PLAN_EXPORT, "n_clicks"): Clicks,
        (ids.THRESHOLD, "value"): Annotated[Number, AfterValidator(_between(0.0, 1.0))],
        (ids.PREDICT_SUBMIT, "n_clicks"): Clicks,
        (ids.PREDICT_LOAD, "n_clicks"): Clicks,
        (ids.PREDICT_LOAD_ID, "value"): Text,
        # "live" or an as_of date; whether a snapshot has that date is the services' check
        (ids.SNAPSHOT, "value"): Annotated[
            StrictStr, Field(pattern=rf"^({layout.LIVE}|\d{{4}}-\d{{2}}-\d{{2}})$")
        ],
        (ids.CAMPAIGN_CREATE, "n_clicks"): Clicks,
        (ids.CAMPAIGN_NAME, "value"): Text,  # the service names its 200-character limit
        (ids.CAMPAIGN_SHARE, "value"): Number,
        (ids.CAMPAIGN_SIZE, "value"): Literal["best", "given"],
        (ids.CAMPAIGN_LIMIT, "value"): Number,
        # each level is also checked against its column's levels (Checker._levels)
        (f"pattern:{ids.FILTER}", "value"): Annotated[list[Text], Field(max_length=MAX_ITEMS)],
        (f"pattern:{ids.FILTER_CHIP}", "n_clicks"): Clicks,
        (f"pattern:{ids.PREDICT_FIELD}", "value"): Scalar,
        # a pattern-matching id read as State: its value is its id (Checker._value)
        (f"pattern:{ids.FILTER}", "id"): Any,
        (f"pattern:{ids.PREDICT_FIELD}", "id"): Any,
        (f"pattern:{ids.KPI}", "id"): Any,
    }


class Refused(ValueError):
    """A callback request that does not match what its callback declares."""


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: (
        Annotated[StrictStr, Field(max_length=200)]
        | dict[
            Annotated[StrictStr, Field(max_length=50)], Annotated[StrictStr, Field(max_length=200)]
        ]
    )
    property: Annotated[StrictStr, Field(max_length=100)]
    value: Any = None


_Items = Annotated[list[_Item], Field(max_length=MAX_ITEMS)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")
    output: Annotated[StrictStr, Field(max_length=20_000)]
    outputs: _Item | Annotated[list[_Item | _Items], Field(max_length=200)]
    inputs: Annotated[list[_Item | _Items], Field(max_length=200)]
    state: Annotated[list[_Item | _Items], Field(max_length=200)] = []
    changedPropIds: Annotated[
        list[Annotated[StrictStr, Field(max_length=300)]], Field(max_length=200)
    ] = []


def _pattern(cid) -> dict | None:
    """A declared pattern-matching id as a dict (Dash keeps them as JSON text), else None."""
    if isinstance(cid, dict):
        return cid
    if isinstance(cid, str) and cid.startswith("{"):
        return json.loads(cid)
    return None


def key_of(cid) -> str:
    """A component id as declarations and the role check compare it: a pattern-matching one
    (a dict, or the JSON text Dash and layout.components_by_id give) by its type."""
    pattern = _pattern(cid)
    return f"pattern:{pattern.get('type')}" if pattern is not None else str(cid)


def declared_ids(spec: dict) -> set[str]:
    """Every component a registered callback reads or writes (key_of), from its declaration,
    not from what a request claims."""
    found = {key_of(d["id"]) for d in spec.get("inputs", []) + spec.get("state", [])}
    outputs = spec.get("output")
    for out in outputs if isinstance(outputs, list) else [outputs]:
        cid = getattr(out, "component_id", None)  # a clientside callback may write nothing
        if cid is not None:
            found.add(key_of(cid))
    return found


def _matches(pattern: dict, concrete: dict) -> bool:
    """A concrete id fits a declared pattern: same keys, same type, wildcards anything."""
    if set(pattern) != set(concrete):
        return False
    return all(isinstance(v, list) or concrete[k] == v for k, v in pattern.items())


def _check_position(declared: dict, sent, where: str, matched: dict) -> None:
    """`sent` is what `declared` names: the same id and property; for a pattern, a list of
    matching ids that is the same list, in the same order, wherever the pattern recurs in the
    request (the callback zips its values, its ids and its outputs together)."""
    pattern = _pattern(declared["id"])
    prop = declared["property"]
    if pattern is None:
        if not isinstance(sent, _Item) or sent.id != declared["id"] or sent.property != prop:
            raise Refused(f"{where} should be {declared['id']}.{prop}")
        return
    if not isinstance(sent, list) or not all(
        isinstance(i.id, dict) and _matches(pattern, i.id) and i.property == prop for i in sent
    ):
        raise Refused(f"{where} should be a list of {pattern['type']} components' {prop}")
    concrete = [i.id for i in sent]
    if len({json.dumps(c, sort_keys=True) for c in concrete}) != len(concrete):
        raise Refused(f"{where}: the same {pattern['type']} component twice")
    first = matched.setdefault(pattern["type"], concrete)
    if first != concrete:
        raise Refused(f"{where}: not the same {pattern['type']} components as elsewhere")


def _changed_are_inputs(body: Body) -> None:
    """Each of changedPropIds names one of the inputs sent (Dash parses them as ids)."""
    sent = [
        (i.id, i.property)
        for entry in body.inputs
        for i in (entry if isinstance(entry, list) else [entry])
    ]
    for changed in body.changedPropIds:
        cid, _, prop = changed.rpartition(".")
        if cid.startswith("{"):
            try:
                cid = json.loads(cid)
            except ValueError:
                raise Refused("changedPropIds: not an input of this request") from None
        if (cid, prop) not in sent:
            raise Refused("changedPropIds: not an input of this request")


def _declared_outputs(spec: dict) -> list[dict]:
    outputs = spec.get("output")
    return [o.to_dict() for o in (outputs if isinstance(outputs, list) else [outputs])]


class Checker:
    """Checks callback requests against the app's callbacks and `declarations(data)`."""

    def __init__(self, callback_map: dict, data) -> None:
        self.callbacks = callback_map
        self.types = {k: TypeAdapter(t | None) for k, t in declarations(data).items()}
        self.levels = {c: frozenset(v) for c, v in data.allowed.items()}

    def missing(self) -> set[tuple[str, str]]:
        """Inputs or state some callback reads that have no declaration."""
        used = {
            (key_of(i["id"]), i["property"])
            for spec in self.callbacks.values()
            for i in spec["inputs"] + spec.get("state", [])
        }
        return used - set(self.types)

    def check(self, raw) -> None:
        """Raise Refused naming the first thing wrong with the request body `raw`."""
        try:
            body = Body.model_validate(raw)
        except ValidationError as exc:
            raise Refused(f"malformed callback request: {_first(exc)}") from None
        spec = self.callbacks.get(body.output)
        if spec is None or "callback" not in spec:  # clientside ones run in the browser only
            raise Refused("no such callback")
        matched: dict[str, list] = {}  # pattern type -> the concrete ids sent, in order
        self._outputs(spec, body.outputs, matched)
        for part in ("inputs", "state"):
            declared = spec.get(part, [])
            sent = getattr(body, part)
            if len(sent) != len(declared):
                raise Refused(f"the callback reads {len(declared)} {part}, got {len(sent)}")
            for n, (d, s) in enumerate(zip(declared, sent, strict=True)):
                _check_position(d, s, f"{part}[{n}]", matched)
                for item in s if isinstance(s, list) else [s]:
                    self._value(d, item)
        _changed_are_inputs(body)

    def _levels(self, item: _Item) -> None:
        """A filter's levels: its column is a filter column and each level one of its own."""
        column = item.id.get("column") if isinstance(item.id, dict) else None
        known = self.levels.get(column)
        if known is None:
            raise Refused("filter: no such filter column")
        if item.value and not set(item.value) <= known:
            raise Refused(f"filter {column[:40]!r}: a level it does not have")

    def _outputs(self, spec: dict, sent, matched: dict) -> None:
        declared = _declared_outputs(spec)
        multi = isinstance(spec.get("output"), list)
        if multi and (not isinstance(sent, list) or len(sent) != len(declared)):
            raise Refused(f"the callback writes {len(declared)} outputs")
        for n, output in enumerate(declared):
            _check_position(output, sent[n] if multi else sent, f"outputs[{n}]", matched)

    def _value(self, declared: dict, item: _Item) -> None:
        key = (key_of(declared["id"]), declared["property"])
        if key[1] == "id" and item.value != item.id:
            raise Refused(f"{key[0]}.id: the value of an id is the id itself")
        checker = self.types.get(key)
        if checker is None:
            raise Refused(f"{key[0]}.{key[1]} is not a declared callback input")
        try:
            checker.validate_python(item.value)
        except ValidationError as exc:
            raise Refused(f"{key[0]}.{key[1]}: {_first(exc)}") from None
        if key == (f"pattern:{ids.FILTER}", "value"):
            self._levels(item)


def _first(exc: ValidationError) -> str:
    """The first problem of a pydantic error, in one short line (never the value itself)."""
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    message = err["msg"]
    return f"{where}: {message}" if where else message
