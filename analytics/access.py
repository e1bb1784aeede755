"""Who may see what: the roles, their rights, and a manager's scope.

The table of rights (README "Accounts and roles") lives here once; the web layer asks
`allowed(role, right)` for every page, callback and API route, and sets the request's scope with
`scoped(...)` so that every selection ServedBase makes is cut to it (`within`). Nothing here
knows about HTTP.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

ADMIN, ANALYST, MANAGER = "admin", "analyst", "manager"
ROLES = (ADMIN, ANALYST, MANAGER)

# Rights, each with the roles that hold it.
VIEWS = "views"  # KPIs, trend, segments, drivers, lists, customer detail, planner, exports, predict
MODEL = "model"  # the model view and GET /api/v1/model
ADMINISTER = "admin"  # users, tokens, audit log, datasets, training, model versions
ALERTS = "alerts"  # reading alert rules and deliveries (a manager: their own); admins define
RIGHTS: Mapping[str, tuple[str, ...]] = {
    VIEWS: (ADMIN, ANALYST, MANAGER),
    MODEL: (ADMIN, ANALYST),
    ADMINISTER: (ADMIN,),
    ALERTS: (ADMIN, MANAGER),
}
RIGHT_NAMES = {
    VIEWS: "the customer views",
    MODEL: "the model view",
    ADMINISTER: "administration (users, tokens, audit log, data and models)",
    ALERTS: "the alert rules and their deliveries",
}


def allowed(role: str | None, right: str) -> bool:
    return role in RIGHTS[right]


def needed(right: str) -> str:
    """'the analyst or admin role', for a 403 that names the role needed."""
    roles = sorted(RIGHTS[right], key=ROLES.index)
    return "the " + " or ".join(roles) + " role"


class ScopeError(ValueError):
    """A scope is written wrongly (`COLUMN=V1,V2`)."""


@dataclass(frozen=True)
class Scope:
    """The customers whose `column` is one of `values`."""

    column: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.column}={','.join(self.values)}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`region=North` or `account_owner=Ann,Bob`; blank values are refused."""
        column, sep, rest = (text or "").partition("=")
        column = column.strip()
        values = tuple(dict.fromkeys(v.strip() for v in rest.split(",") if v.strip()))
        if not sep or not column or not values:
            raise ScopeError(f"scope {text!r}: expected COLUMN=VALUE[,VALUE...], e.g. region=North")
        return cls(column, values)

    @classmethod
    def of(cls, column: str | None, values: Sequence[str] | None) -> Scope | None:
        if not column or not values:
            return None
        return cls(column, tuple(str(v) for v in values))


# The request's scope; None = every customer. Set by the web layer around each request.
_SCOPE: ContextVar[Scope | None] = ContextVar("retention_scope", default=None)

# A level no column has: a selection asking only for levels outside the scope selects nobody.
NO_LEVEL = "\x00outside scope"


def current_scope() -> Scope | None:
    return _SCOPE.get()


@contextlib.contextmanager
def scoped(scope: Scope | None) -> Iterator[None]:
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def enter(scope: Scope | None):
    """Set the scope until `leave(token)` (a request's before/teardown hooks)."""
    return _SCOPE.set(scope)


def leave(token) -> None:
    _SCOPE.reset(token)


def within(
    levels: Mapping[str, tuple[str, ...]], scope: Scope | None
) -> dict[str, tuple[str, ...]]:
    """Selected levels cut to the scope: the scope's values when the column is not filtered,
    the filter's levels inside the scope when it is, and nobody when none of them are."""
    cut = dict(levels)
    if scope is None:
        return cut
    asked = cut.get(scope.column) or ()
    if not asked:
        cut[scope.column] = scope.values
    else:
        inside = tuple(v for v in asked if v in scope.values)
        cut[scope.column] = inside or (NO_LEVEL,)
    return cut


def scoped_levels(allowed: Mapping[str, Sequence[str]], scope: Scope | None) -> dict:
    """The filter levels a user may pick: the scope column offers the scope's values only."""
    out = {c: list(v) for c, v in allowed.items()}
    if scope is not None and scope.column in out:
        out[scope.column] = [v for v in out[scope.column] if v in scope.values]
    return out
