"""Score new customers given as records (the prediction card and the API).

The model's input schema comes from its sidecar: known levels for categorical features,
observed ranges for numeric ones. Every problem with a record is collected, so a form or an API
client learns all of them at once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.metrics import value
from analytics.model import explain
from analytics.plain import plain

# Numbers may go a little past what training saw (a tenure one month longer than the oldest
# customer); far outside, the model extrapolates blindly, so they are refused.
RANGE_SLACK = 0.5


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def as_dict(self) -> dict:
        return {"field": self.field, "message": self.message}


def input_schema(meta: Mapping) -> dict[str, dict]:
    """feature -> {kind, levels | whole/min/max/allowed_min/allowed_max, default}."""
    schema = {}
    typical = meta.get("typical", {})
    for feature in meta["features"]:
        if feature in meta["categorical"]:
            levels = list(meta["feature_levels"].get(feature, []))
            default = typical.get(feature)
            schema[feature] = {
                "kind": "categorical",
                "levels": levels,
                "default": default if default in levels else (levels[0] if levels else None),
            }
        else:
            lo, hi = meta["feature_ranges"].get(feature, [None, None])
            lo = 0.0 if lo is None else float(lo)
            hi = lo if hi is None else float(hi)
            span = hi - lo
            allowed_lo = lo - RANGE_SLACK * span if lo < 0 else max(0.0, lo - RANGE_SLACK * span)
            default = typical.get(feature)
            if not isinstance(default, int | float) or not math.isfinite(default):
                default = (lo + hi) / 2
            whole = feature in meta.get("whole_numbers", ())
            if whole:
                default = round(default)
            schema[feature] = {
                "kind": "numeric",
                # Older model versions lack the list: any number is accepted there.
                "whole": whole,
                "min": lo,
                "max": hi,
                "allowed_min": allowed_lo,
                "allowed_max": hi + RANGE_SLACK * span,
                "default": round(float(default), 2),
            }
    return schema


def check_record(
    schema: Mapping[str, dict], record: object, *, where: str = "", ignored: Collection[str] = ()
) -> tuple[dict, list[Problem]]:
    """Validate one record against the schema; returns (clean values, problems). Fields in
    `ignored` (columns of the table the model does not use, so that a customer's profile is
    accepted as it is) are dropped; any other field the schema lacks is a problem."""
    prefix = f"{where}." if where else ""
    if not isinstance(record, Mapping):
        return {}, [Problem(where or "body", "expected an object of feature: value pairs")]
    clean: dict = {}
    problems: list[Problem] = []
    record = _with_total_revenue(schema, record)
    for key in record:
        if key not in schema and key != C.CUSTOMER_ID and key not in ignored:
            problems.append(Problem(f"{prefix}{key}", "unknown field"))
    for feature, spec in schema.items():
        raw = record.get(feature)
        # Fast paths for the usual case (an exact level; a plain in-range number): a
        # 10,000-customer batch checks 200,000 fields.
        kind = type(raw)
        if spec["kind"] == "categorical":
            if kind is str and raw in spec["levels"]:
                clean[feature] = raw
                continue
        elif kind is float or kind is int:
            number = _number(raw)
            fits = number is not None and spec["allowed_min"] <= number <= spec["allowed_max"]
            if fits and (not spec.get("whole") or number.is_integer()):
                clean[feature] = number
                continue
        name = f"{prefix}{feature}"
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            problems.append(Problem(name, "missing: a value is required"))
            continue
        if spec["kind"] == "categorical":
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                problems.append(Problem(name, f"expected one of {_levels_text(spec)}"))
                continue
            level = _match_level(str(raw).strip(), spec["levels"])
            if level is None:
                problems.append(
                    Problem(
                        name, f"unknown level {str(raw)!r}; expected one of {_levels_text(spec)}"
                    )
                )
            else:
                clean[feature] = level
        else:
            number = _number(raw)
            if number is None:
                problems.append(Problem(name, f"expected a number, got {_shown(raw)}"))
            elif spec.get("whole") and not number.is_integer():
                problems.append(
                    Problem(
                        name,
                        f"a whole number is required, got {number:g} (the model saw only "
                        f"whole numbers, {spec['min']:g} to {spec['max']:g})",
                    )
                )
            elif not spec["allowed_min"] <= number <= spec["allowed_max"]:
                problems.append(
                    Problem(
                        name,
                        f"{number:g} is out of range: expected {spec['allowed_min']:g} to "
                        f"{spec['allowed_max']:g} (observed {spec['min']:g} to {spec['max']:g})",
                    )
                )
            else:
                clean[feature] = number
    if C.CUSTOMER_ID in record:
        clean[C.CUSTOMER_ID] = str(record[C.CUSTOMER_ID])
    return clean, problems


def _shown(raw: object, limit: int = 40) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def optional_fields(schema: Mapping[str, dict]) -> set[str]:
    """Fields a record may leave out: total_revenue when it can be derived (tenure x monthly)."""
    derivable = C.TENURE in schema and C.MONTHLY_REVENUE in schema
    return {C.TOTAL_REVENUE} if derivable and C.TOTAL_REVENUE in schema else set()


def _with_total_revenue(schema: Mapping[str, dict], record: Mapping) -> Mapping:
    """total_revenue is optional (METRICS.md: else tenure x monthly): fill it when absent."""
    if C.TOTAL_REVENUE not in schema or record.get(C.TOTAL_REVENUE) not in (None, ""):
        return record
    tenure, monthly = _number(record.get(C.TENURE)), _number(record.get(C.MONTHLY_REVENUE))
    if tenure is None or monthly is None:
        return record
    return {**record, C.TOTAL_REVENUE: tenure * monthly}


def _levels_text(spec: Mapping) -> str:
    levels = spec["levels"]
    shown = ", ".join(map(repr, levels[:10]))
    return shown + (f" and {len(levels) - 10} more" if len(levels) > 10 else "")


def _match_level(text: str, levels: Sequence[str]) -> str | None:
    if text in levels:
        return text
    folded = {str(level).casefold(): level for level in levels}
    return folded.get(text.casefold())


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        try:
            x = float(raw)
        except OverflowError:  # an integer with hundreds of digits
            return None
    elif isinstance(raw, str):
        try:
            x = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def records_frame(meta: Mapping, records: Sequence[Mapping]) -> pd.DataFrame:
    """Checked records -> model input frame with the training dtypes."""
    frame = pd.DataFrame.from_records(list(records), columns=list(meta["features"]))
    for feature in meta["categorical"]:
        frame[feature] = pd.Categorical(
            frame[feature], categories=meta["feature_levels"].get(feature, [])
        )
    for feature in meta["numeric"]:
        frame[feature] = pd.to_numeric(frame[feature]).astype("float64")
    return frame


def predict(
    model, records: Sequence[Mapping], *, margin: float, discount: float, top: int = 3
) -> list[dict]:
    """Probability, risk band, CLV, value and drivers for checked records (final model)."""
    meta = model.meta
    scorer = getattr(model, "scorer", None)
    if scorer is not None:
        # Straight from the records to the scorer's matrix: building a typed pandas frame
        # costs more than scoring one customer.
        R = scorer.encode_records(records)
        p, d = scorer.probability_and_deltas(R, meta["typical"])
        features = scorer.features
        raw = {f: np.array([r.get(f) for r in records], dtype=object) for f in features}
    else:
        X = records_frame(meta, records)
        p, deltas = explain.probability_and_deltas(model.pipeline, X, meta["typical"])
        features, d = list(deltas.columns), deltas.to_numpy()
        raw = {f: X[f].to_numpy(dtype=object) for f in features}
    window = meta.get("window_months", 1)
    bands = np.asarray(value.risk_band(p, meta["threshold"]), dtype=object)
    base_rate = meta["churned"] / meta["base_rows"]
    # Whole-array work first; the per-row loop only assembles plain Python values.
    revenue = (
        np.array([np.nan if v is None else v for v in raw[C.MONTHLY_REVENUE]], dtype=float)
        if C.MONTHLY_REVENUE in raw
        else np.full(len(records), np.nan)
    )
    clv = value.clv(revenue, value.monthly_probability(p, window), margin, discount)
    size = value.customer_value(revenue, base_rate, window, margin, discount)
    loss = value.expected_loss(p, size)
    order = np.argsort(-d, axis=1, kind="stable")[:, :top]
    threshold = round(float(meta["threshold"]), 4)
    out = []
    for i, record in enumerate(records):
        row = {
            "probability": round(float(p[i]), 4),
            "risk_band": str(bands[i]),
            "threshold": threshold,
        }
        if C.CUSTOMER_ID in record:
            row[C.CUSTOMER_ID] = record[C.CUSTOMER_ID]
        if math.isfinite(revenue[i]):
            row["clv"] = round(float(clv[i]), 2)
            row["value"] = round(float(size[i]), 2)
            row["expected_loss"] = round(float(loss[i]), 2)
        row["drivers"] = [
            {
                "feature": features[j],
                "value": plain(raw[features[j]][i]),
                "change_in_probability": round(float(d[i, j]), 4),
            }
            for j in order[i]
            if d[i, j] >= explain.MIN_REASON_DELTA  # "+0.0 pts" explains nothing
        ]
        out.append(row)
    return out

