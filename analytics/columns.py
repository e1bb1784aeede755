"""Canonical column names (../shared/METRICS.md) and the columns the scorer adds.

One place for every name, so a rename is one edit.
"""

# Canonical input columns.
CUSTOMER_ID = "customer_id"
CHURNED = "churned"
TENURE = "tenure_months"
MONTHLY_REVENUE = "monthly_revenue"
TOTAL_REVENUE = "total_revenue"
SIGNUP_DATE = "signup_date"
CHURN_DATE = "churn_date"

CANONICAL = (CUSTOMER_ID, CHURNED, TENURE, MONTHLY_REVENUE, TOTAL_REVENUE, SIGNUP_DATE, CHURN_DATE)
DATE_COLUMNS = (SIGNUP_DATE, CHURN_DATE)
# Canonical columns that are never model features.
NON_FEATURES = (CUSTOMER_ID, CHURNED, SIGNUP_DATE, CHURN_DATE)

# Columns added by scoring (analytics.metrics.value / analytics.model), and their lists below.
P_CHURN = "p_churn"  # probability of churn within the data's observation window
P_MONTHLY = "p_monthly"  # monthly equivalent: 1 - (1 - p)^(1 / window months)
RISK_BAND = "risk_band"  # Low / Medium / High against the decision threshold t
CLV = "clv"
VALUE = "value"
EXPECTED_LOSS = "expected_loss"
HIGH_VALUE = "high_value"
VALUE_TIER = (
    "value_tier"  # Low / Mid / High: below P25, P25-P75, at or above P75 of active customers
)
SEGMENT = "segment"
EXPECTED_SAVING = "expected_saving"  # the planner's contact list: s x p_i x Value_i
REASONS = ("reason_1", "reason_2", "reason_3")

# The columns that need monthly_revenue: re-valuing replaces them, a table without revenue lacks
# them.
VALUE_COLUMNS = (CLV, VALUE, EXPECTED_LOSS, HIGH_VALUE, VALUE_TIER)
# Every column scoring adds. They are outputs, never inputs: a table that already holds one of
# them (a scored export loaded back) keeps it out of the model and of the segments.
SCORED_COLUMNS = (P_CHURN, P_MONTHLY, RISK_BAND, *VALUE_COLUMNS, SEGMENT, *REASONS)

RISK_BANDS = ("Low", "Medium", "High")
VALUE_TIERS = ("Low", "Mid", "High")
