"""The retention planner of a selection under the user's assumptions: the net-benefit curve over
N, the best N, saved value, cost, net benefit, ROI and the contact list (METRICS.md)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from analytics.metrics.planner import EXPECTED_SAVING
from analytics.plain import plain, records
from analytics.result import Unavailable
from analytics.services.base import ServedBase
from analytics.services.errors import InvalidInput
from analytics.services.overview import NO_MATCH

CONTACT_ROWS = 500  # contacts shown with the plan; the export has every one


@dataclass(frozen=True)
class Assumptions:
    """What the planner assumes; each is an input the user can change (METRICS.md)."""

    save_rate: float
    cost_per_contact: float
    margin: float
    discount: float

    # name -> (low, high, low bound open): the ranges the settings allow too
    LIMITS = {  # noqa: RUF012 - a class constant, never changed
        "save_rate": (0.0, 1.0, False),
        "cost_per_contact": (0.0, math.inf, False),
        "margin": (0.0, 1.0, True),
        "discount": (0.0, 1.0, False),
    }

    @classmethod
    def parse(cls, **raw) -> tuple[Assumptions | None, list[InvalidInput]]:
        """From form or query values: the assumptions, or a problem per bad field."""
        values, problems = {}, []
        for name, (low, high, open_low) in cls.LIMITS.items():
            value = raw.get(name)
            if value is None or value == "":
                problems.append(InvalidInput(name, "a value is required"))
                continue
            try:
                x = float(value)
            except (TypeError, ValueError):
                problems.append(InvalidInput(name, f"expected a number, got {value!r}"))
                continue
            too_low = x <= low if open_low else x < low
            if not math.isfinite(x) or too_low or x > high:
                lower = "above" if open_low else "at least"
                bound = f"{lower} {low:g}" + (f" and at most {high:g}" if high < math.inf else "")
                problems.append(InvalidInput(name, f"must be {bound}; got {value}"))
                continue
            values[name] = x
        return (None if problems else cls(**values)), problems

    @classmethod
    def checked(cls, **raw) -> Assumptions:
        """parse(), raising the first problem."""
        found, problems = cls.parse(**raw)
        if problems:
            raise problems[0]
        return found

    @classmethod
    def defaults(cls, settings) -> Assumptions:
        return cls(
            settings.save_rate, settings.cost_per_contact, settings.margin, settings.discount
        )


def _plan(base: ServedBase, query: str, a: Assumptions):
    base.require_model("the retention planner")
    return base.cached(
        "plan",
        query,
        lambda: base.planner.plan(
            base.mask(query),
            save_rate=a.save_rate,
            cost_per_contact=a.cost_per_contact,
            margin=a.margin,
            discount=a.discount,
        ),
        (a.save_rate, a.cost_per_contact, a.margin, a.discount),
        large=True,
    )


def plan(base: ServedBase, query: str, a: Assumptions, *, contacts: int = CONTACT_ROWS) -> dict:
    """The plan: curve points (n, net_benefit, saved_value, cost), best_n and its figures, and
    the first `contacts` customers to contact with their expected saving."""
    base.require_model("the retention planner")
    out = {"assumptions": asdict(a), "curve": [], "contacts": [], "note": ""}
    if not base.count(query):
        return {**out, "note": NO_MATCH}
    result = _plan(base, query, a)
    if isinstance(result, Unavailable):
        return {**out, "note": result.reason}
    fields = [*base.grid_fields, EXPECTED_SAVING]
    return {
        **out,
        "curve": records(result.curve),
        "best_n": result.best_n,
        "saved_value": plain(result.saved_value),
        "cost": plain(result.cost),
        "net_benefit": plain(result.net_benefit),
        "roi": plain(result.roi),
        "candidates": result.candidates,
        "contacts": records(result.first_contacts(contacts, fields), fields),
    }


def contacts_frame(base: ServedBase, query: str, a: Assumptions):
    """Every customer the plan contacts, in order, with the list's columns (for exports)."""
    result = _plan(base, query, a)
    if isinstance(result, Unavailable):
        raise InvalidInput("plan", result.reason)
    fields = [c for c in [*base.grid_fields, EXPECTED_SAVING] if c in result.contacts.columns]
    return result.contacts[fields]


def save_rate_source(given: float | None, measured: dict | None) -> dict:
    """Which save rate the plan uses, and says so (METRICS.md): the user's own, else the one a
    campaign measured (with its interval), else the assumed RETENTION_SAVE_RATE."""
    if given is not None:
        return {"used": "given", "text": f"Save rate {given:.0%}: your input."}
    if measured is not None:
        low, high = measured.get("ci_low"), measured.get("ci_high")
        interval = f" (95% interval {low:.0%} to {high:.0%})" if low is not None else ""
        return {
            **measured,
            "used": "measured",
            "text": f"Save rate {measured['save_rate']:.0%} measured by the campaign "
            f"'{measured['campaign']}'{interval}"
            + (
                f" (it measured {measured['measured']:.0%}; a plan takes 0% to 100%)."
                if measured.get("measured", measured["save_rate"]) != measured["save_rate"]
                else "."
            ),
        }
    return {"used": "assumed", "text": "Save rate assumed (RETENTION_SAVE_RATE): no campaign "
            "has measured one yet."}  # fmt: skip
