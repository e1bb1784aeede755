"""Recommended actions follow the customer's top reason, matched on whole words of its name."""

import pytest

from analytics.metrics.planner import DEFAULT_ACTION, recommend_action


@pytest.mark.parametrize(
    ("reason", "starts"),
    [
        ("tenure_months = 2 (+9.0 pts)", "Early-life"),
        ("Account length = 2 (+1.0 pts)", "Early-life"),
        ("customer_age = 62 (+3.0 pts)", "Personal retention call"),  # age is not tenure
        ("Contract = Month-to-month (+5.0 pts)", "Offer a discounted longer contract"),
        ("support_tickets_90d = 4 (+3.0 pts)", "Priority call"),
        ("PaymentMethod = Electronic check (+2.0 pts)", "Move them to automatic payment"),
        ("last_price_change_pct = 20 (+1.0 pts)", "Review their recent price change"),
    ],
)
def test_action_follows_the_top_reason(reason, starts):
    row = {"risk_band": "High", "p_churn": 0.6, "value": None, "reason_1": reason}
    assert recommend_action(row, save_rate=0.25, cost_per_contact=10).startswith(starts)


def test_low_risk_and_low_return_customers_get_no_costly_action():
    low = {"risk_band": "Low", "p_churn": 0.02, "value": 500.0, "reason_1": ""}
    assert recommend_action(low, save_rate=0.25, cost_per_contact=10).startswith("No action")
    cheap = {"risk_band": "High", "p_churn": 0.5, "value": 40.0, "reason_1": "tenure = 1"}
    text = recommend_action(cheap, save_rate=0.25, cost_per_contact=10)
    assert "Low expected return" in text  # 0.25 x 0.5 x 40 = 5 < 10
    assert text != DEFAULT_ACTION


@pytest.mark.parametrize(
    ("reason", "starts"),
    [
        ("Tenure: 2 months (+9.0 pts)", "Early-life"),
        ("Tech support: No (+4.0 pts)", "Priority call"),
        ("Internet service: Fiber optic (+2.0 pts)", "Bundle offer"),
        ("Payment method: Electronic check (+2.0 pts)", "Move them to automatic payment"),
    ],
)
def test_action_follows_a_reason_in_words(reason, starts):
    row = {"risk_band": "High", "p_churn": 0.6, "value": None, "reason_1": reason}
    assert recommend_action(row, save_rate=0.25, cost_per_contact=10).startswith(starts)


def test_a_low_return_says_its_money_in_the_currency():
    cheap = {"risk_band": "High", "p_churn": 0.5, "value": 40.0, "reason_1": ""}
    text = recommend_action(cheap, save_rate=0.25, cost_per_contact=10, currency="EUR")
    assert "saving 5 EUR < contact cost 10 EUR" in text
