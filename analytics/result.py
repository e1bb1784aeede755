"""A view that cannot be computed for this data says why instead of raising."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Unavailable:
    """Returned in place of a result when the data lacks what the view needs.

    `reason` is one sentence a user can read, e.g.
    "Not available because the data has no monthly_revenue column."
    """

    reason: str

    def __bool__(self) -> bool:  # lets callers write `if not result: show(result.reason)`
        return False
