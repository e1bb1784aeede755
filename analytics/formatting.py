"""How the product's numbers and names read to a person: money with the currency setting
(RETENTION_CURRENCY), shares of all customers, whole numbers, and one display name per column.

One home for each, so the dashboard's cards, grids and charts, the reasons, the exports and the
CLI all say the same thing the same way. The API keeps plain numbers (and says its currency once).
"""

from __future__ import annotations

import math
import re

from analytics import columns as C
from analytics.config import Settings

DEFAULT_CURRENCY: str = Settings.model_fields["currency"].default

# Columns that hold an amount of money.
MONEY_COLUMNS = frozenset(
    {C.MONTHLY_REVENUE, C.TOTAL_REVENUE, C.CLV, C.VALUE, C.EXPECTED_LOSS, C.EXPECTED_SAVING}
)
# Columns measured in a unit a person needs to read the number.
UNITS = {C.TENURE: "months"}

# Display names of the columns the product knows; any other column is humanised.
NAMES = {
    C.CUSTOMER_ID: "Customer",
    C.CHURNED: "Churned",
    C.TENURE: "Tenure",
    C.MONTHLY_REVENUE: "Monthly revenue",
    C.TOTAL_REVENUE: "Total revenue",
    C.SIGNUP_DATE: "Signup date",
    C.CHURN_DATE: "Churn date",
    C.P_CHURN: "Churn probability",
    C.P_MONTHLY: "Monthly churn probability",
    C.RISK_BAND: "Risk band",
    C.CLV: "CLV",
    C.VALUE: "Value",
    C.EXPECTED_LOSS: "Expected loss",
    C.HIGH_VALUE: "High value",
    C.VALUE_TIER: "Value tier",
    C.SEGMENT: "Segment",
    C.EXPECTED_SAVING: "Expected saving",
    **{r: f"Reason {i}" for i, r in enumerate(C.REASONS, start=1)},
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def display_name(column: str) -> str:
    """The one name a person sees for a column or feature: "tenure_months" -> "Tenure",
    "InternetService" and "internet_service" -> "Internet service", "PaymentMethod_ID" ->
    "Payment method ID"."""
    column = str(column)
    if column in NAMES:
        return NAMES[column]
    words = _CAMEL.sub(" ", column).replace("_", " ").replace("-", " ").split()
    if not words:
        return column
    # Acronyms (ID, MRR) keep their case; other words are lower case after the first.
    words = [w if len(w) > 1 and w.isupper() else w.lower() for w in words]
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def header(column: str) -> str:
    """A column header: the display name with its unit ("Tenure (months)"); a probability in
    percent says so. Money columns show the currency in their cells."""
    if column == C.P_CHURN:
        return "Churn probability (%)"
    unit = UNITS.get(column)
    return f"{display_name(column)} ({unit})" if unit else display_name(column)


def export_header(column: str, currency: str) -> str:
    """A CSV export's header: the grid's header, and money columns say their currency
    ("Expected loss ($)"), since an exported cell is a plain number."""
    return f"{header(column)} ({currency})" if column in MONEY_COLUMNS else header(column)


def _symbol(currency: str) -> bool:
    """A sign ($, €, kr.) goes before the amount; a code or word (EUR, CHF, kr) after it."""
    return not any(ch.isalpha() for ch in currency)


def money_affixes(currency: str) -> tuple[str, str]:
    """(prefix, suffix) around an amount: ("$", "") or ("", " EUR")."""
    return (currency, "") if _symbol(currency) else ("", f" {currency}")


def money(x, currency: str, *, decimals: int = 0, compact: bool = False) -> str:
    """An amount with its currency: "$1,234", "-$12.50", "1,234 EUR"; compact: "$1.2M".
    None or NaN is "–"."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    x = float(x)
    digits = f"{abs(x):,.{decimals}f}"
    if compact:
        for cut, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= cut:
                digits = f"{abs(x) / cut:,.1f}{suffix}"
                break
    sign = "-" if x < 0 and any(d in "123456789" for d in digits) else ""
    prefix, suffix = money_affixes(currency)
    return f"{sign}{prefix}{digits}{suffix}"


def money_js(currency: str, decimals: int = 0) -> str:
    """The AG Grid valueFormatter (a JavaScript expression over `params.value`, d3 in scope)
    that writes an amount the way `money` does."""
    prefix, suffix = money_affixes(currency)
    return (
        "params.value == null ? '' : (params.value < 0 ? '-' : '') + "
        f"{prefix!r} + d3.format(',.{decimals}f')(Math.abs(params.value)) + {suffix!r}"
    )


def money_hover(field: str, currency: str, decimals: int = 0) -> str:
    """A Plotly hovertemplate fragment for an amount: "$%{y:,.0f}"."""
    prefix, suffix = money_affixes(currency)
    return f"{prefix}%{{{field}:,.{decimals}f}}{suffix}"


def money_axis(currency: str) -> dict:
    """Plotly axis settings that put the currency on the ticks."""
    prefix, suffix = money_affixes(currency)
    return {"tickprefix": prefix, "ticksuffix": suffix, "tickformat": ",.0f"}


def number(x) -> str:
    """A number as a person writes it: 2, 1,250, 3.75 (no "2.0")."""
    x = float(x)
    if x.is_integer():
        return f"{int(x):,}"
    return f"{x:,.2f}".rstrip("0").rstrip(".") if abs(x) >= 1 else f"{x:.3g}"


def value_text(column: str, value, currency: str) -> str:
    """A feature's value in words: "2 months", "$89.50", "Monthly", "missing"."""
    if value is None or value is math.nan or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, str):
        return value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "missing"
    if column in MONEY_COLUMNS:
        return money(x, currency, decimals=0 if x.is_integer() else 2)
    unit = UNITS.get(column)
    text = number(x)
    if unit == "months":
        return f"{text} month" if x == 1 else f"{text} months"
    return text


def reason_text(column: str, value, change: float, currency: str) -> str:
    """One reason: "Tenure: 2 months (+18.2 pts)"."""
    shown = value_text(column, value, currency)
    return f"{display_name(column)}: {shown} (+{100 * change:.1f} pts)"


def share_of_all(part: float, whole: float) -> str:
    """part / whole as a share of all customers: "all customers" only when it is all, a small
    non-zero share "<0.1% of all", never "0%" or "100%" for what is neither."""
    if not whole:
        return ""
    if math.isclose(part, whole, rel_tol=1e-12, abs_tol=0.0):
        return "all customers"
    share = part / whole
    if share == 0:
        return "0% of all"
    if 0 < share < 0.001:
        return "<0.1% of all"
    if 0.999 < share < 1:
        return ">99.9% of all"
    if share < 0.01 or 0.99 < share < 1:
        return f"{share:.1%} of all"
    return f"{share:.0%} of all"


# Control characters (NUL, which PostgreSQL refuses; CR/LF), the other characters str.splitlines
# breaks at (\x1c-\x1e, \x85, \u2028, \u2029: an e-mail header refuses them) and the invisible
# direction marks. A name a person gives (a campaign's, an alert rule's) holds none of them.
_NOT_IN_NAMES = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
NAME_RULE = "must be one line without control characters (line breaks, tabs, NUL)"


def plain_name(text: str) -> bool:
    """Whether `text` is a name as one line of plain text (NAME_RULE)."""
    return _NOT_IN_NAMES.search(text) is None
