"""Over time (../shared/METRICS.md, "Over time", "Campaigns", "Revenue retention"): pure
functions of snapshot frames. A snapshot frame is one scoring of a base: one row per customer
with customer_id, p_churn, risk_band, value, expected_loss, segment, monthly_revenue, the
features and, once its window has passed, churned."""
