"""A time budget for one request's work.

A thread cannot be stopped from outside in Python, so the budget is cooperative: the web layer
sets a deadline for the request (`enter`), and the steps whose count a user controls (a list's
filter conditions, its sort, each service call) call `check()` between steps. Past the deadline
`check()` raises OverBudget and the request ends with a clear answer instead of holding a
worker thread. The request's inputs are bounded as well (dashboard.callback_inputs, the API's
models), so no single step runs long.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("retention_deadline", default=None)


class OverBudget(RuntimeError):
    """The request's work went past its time budget."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"this request needed more than its {seconds:g} s budget (RETENTION_REQUEST_SECONDS):"
            " narrow the selection or try again"
        )
        self.seconds = seconds


def enter(seconds: float | None):
    """Give the current request `seconds` from now (None: no budget) until `leave(token)`."""
    return _DEADLINE.set(None if seconds is None else (time.monotonic() + seconds, seconds))


def leave(token) -> None:
    _DEADLINE.reset(token)


def check() -> None:
    """Raise OverBudget when the current request is past its deadline."""
    found = _DEADLINE.get()
    if found is not None and time.monotonic() > found[0]:
        raise OverBudget(found[1])
