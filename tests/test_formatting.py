"""How numbers, money, shares and names read (analytics.formatting), and the reasons and
exports built with it (issue 9)."""

import io

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics import export, formatting
from analytics.model import explain


@pytest.mark.parametrize(
    ("x", "currency", "kwargs", "text"),
    [
        (1234.4, "$", {}, "$1,234"),
        (-12.5, "$", {"decimals": 2}, "-$12.50"),
        (1234.4, "EUR", {}, "1,234 EUR"),
        (1_250_000, "€", {"compact": True}, "€1.2M"),
        (980, "kr", {"compact": True}, "980 kr"),
        (-0.2, "$", {}, "$0"),
        (None, "$", {}, "–"),
    ],
)
def test_money_carries_the_currency(x, currency, kwargs, text):
    assert formatting.money(x, currency, **kwargs) == text


def test_grid_formatter_and_chart_hover_use_the_same_currency():
    assert "'EUR'" not in formatting.money_js("$")
    js = formatting.money_js("EUR")
    assert "' EUR'" in js
    assert "d3.format(',.0f')" in js
    assert formatting.money_hover("y", "$") == "$%{y:,.0f}"
    assert formatting.money_axis("CHF")["ticksuffix"] == " CHF"


@pytest.mark.parametrize(
    ("column", "name"),
    [
        (C.TENURE, "Tenure"),
        ("contract_type", "Contract type"),
        ("InternetService", "Internet service"),
        ("internet_service", "Internet service"),
        ("support_tickets_90d", "Support tickets 90d"),
        ("PaymentMethod_ID", "Payment method ID"),
        (C.VALUE_TIER, "Value tier"),
    ],
)
def test_one_display_name_per_column(column, name):
    assert formatting.display_name(column) == name


def test_headers_say_their_unit():
    assert formatting.header(C.TENURE) == "Tenure (months)"
    assert formatting.header(C.P_CHURN) == "Churn probability (%)"
    assert formatting.export_header(C.EXPECTED_LOSS, "EUR") == "Expected loss (EUR)"


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [
        (1, 100_000, "<0.1% of all"),
        (5, 1000, "0.5% of all"),
        (250, 1000, "25% of all"),
        (99_999, 100_000, ">99.9% of all"),
        (995, 1000, "99.5% of all"),
        (1000, 1000, "all customers"),
        (0, 1000, "0% of all"),
    ],
)
def test_a_share_of_all_is_never_rounded_to_0_or_100(part, whole, text):
    assert formatting.share_of_all(part, whole) == text


def test_reasons_read_in_words_with_units_and_currency():
    X = pd.DataFrame(
        {
            C.TENURE: [2.0],
            "contract": pd.Categorical(["Monthly"]),
            C.MONTHLY_REVENUE: [89.5],
            "support_tickets_90d": [3.0],
        }
    )
    deltas = pd.DataFrame([[0.182, 0.09, 0.03, 0.0]], columns=list(X.columns), index=X.index)
    reasons = explain.reasons_from_deltas(X, deltas, currency="$").iloc[0].tolist()
    assert reasons == [
        "Tenure: 2 months (+18.2 pts)",
        "Contract: Monthly (+9.0 pts)",
        "Monthly revenue: $89.50 (+3.0 pts)",
    ]
    euro = explain.reasons_from_deltas(X, deltas, currency="EUR")["reason_3"].iloc[0]
    assert euro == "Monthly revenue: 89.50 EUR (+3.0 pts)"
    one = formatting.reason_text(C.TENURE, 1, 0.05, "$")
    assert one == "Tenure: 1 month (+5.0 pts)"
    assert formatting.reason_text("calls", np.nan, 0.05, "$") == "Calls: missing (+5.0 pts)"


def test_list_export_is_in_percent_and_says_so():
    frame = pd.DataFrame({C.CUSTOMER_ID: ["a"], C.P_CHURN: [0.69353339], C.EXPECTED_LOSS: [120.0]})
    out = pd.read_csv(io.StringIO(export.list_csv(frame, "$")))
    assert list(out.columns) == ["Customer", "Churn probability (%)", "Expected loss ($)"]
    assert out["Churn probability (%)"].iloc[0] == pytest.approx(69.35)
