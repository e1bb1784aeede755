"""Every component id, in one place: callbacks and tests import these, never literals."""

# Page and URL state
URL = "url"
FILTER_QUERY = "filter-query"  # dcc.Store: the canonical filter query string ("?segment=...")
TABS = "tabs"
STATUS = "status-line"

# Filters
FILTER = "filter"  # pattern-matching type: {"type": FILTER, "column": <column>}
TENURE = "filter-tenure"
RESET = "filter-reset"
FILTERS_DETAILS = "filters-details"  # folds the filter panel on phones
SELECTION_SUMMARY = "selection-summary"
ACTIVE_FILTERS = "active-filters"  # the chips naming every active filter, above the KPIs
FILTER_CHIP = "filter-chip"  # pattern-matching type: {"type": FILTER_CHIP, "column", "value"}
COPY_LINK = "copy-link"

# Over time: the snapshot every customer view reads, and the model-monitoring banner
SNAPSHOT = "snapshot-picker"  # dropdown of as_of dates; LIVE_SNAPSHOT = the live base
SNAPSHOT_NOTE = "snapshot-note"  # which snapshot the views show, above the KPIs
MONITOR_BANNER = "monitor-banner"  # under the navbar, on every tab
KPI_CHANGE_NOTE = "kpi-change-note"  # why there is no "vs last month"

# Overview
KPI = "kpi"  # pattern-matching type: {"type": KPI, "name": <kpi>}
KPI_ROW = "kpi-row"
TREND = "trend-graph"
TREND_SPLIT = "trend-split"
TREND_NOTE = "trend-note"
COHORT = "cohort-graph"
COHORT_CARD = "cohort-card"
DOUGHNUT = "segment-doughnut"
SEGMENT_CHURN = "segment-churn"
SEGMENT_PROFILE = "segment-profile"

TREND_SNAPSHOT_NOTE = "trend-snapshot-note"  # predicted beside realised, per snapshot

# Drivers
FACTOR = "factor-dropdown"
FACTOR_GRAPH = "factor-graph"
IMPORTANCE = "importance-graph"

# Customers: value x risk, at-risk list, detail
SCATTER = "value-risk-scatter"
AT_RISK_GRID = "at-risk-grid"
AT_RISK_COUNT = "at-risk-count"
AT_RISK_EXPORT = "at-risk-export"
AT_RISK_DOWNLOAD = "at-risk-download"
DETAIL = "customer-detail"
DETAIL_BODY = "customer-detail-body"

# Planner
PLAN_SAVE_RATE = "plan-save-rate"
PLAN_COST = "plan-cost"
PLAN_MARGIN = "plan-margin"
PLAN_DISCOUNT = "plan-discount"
PLAN_CURVE = "plan-curve"
PLAN_SUMMARY = "plan-summary"
PLAN_GRID = "plan-grid"
PLAN_EXPORT = "plan-export"
PLAN_DOWNLOAD = "plan-download"
PLAN_ERROR = "plan-error"
PLAN_SAVE_RATE_SOURCE = "plan-save-rate-source"  # measured by a campaign, or assumed

# Campaigns: created from the planner, measured once a later snapshot says who left
CAMPAIGN_NAME = "campaign-name"
CAMPAIGN_SHARE = "campaign-control-share"  # percent held out as the control group
CAMPAIGN_SIZE = "campaign-size"  # "best" (the plan's best N) or "given" (CAMPAIGN_LIMIT)
CAMPAIGN_LIMIT = "campaign-limit"
CAMPAIGN_CREATE = "campaign-create"
CAMPAIGN_RESULT = "campaign-result"
CAMPAIGN_HINT = "campaign-hint"  # why the Create button is off (a past snapshot is picked)
CAMPAIGN_DOWNLOAD = "campaign-download"
CAMPAIGN_LIST = "campaign-list"

# Changes since the previous snapshot: movers and revenue retention
MOVERS_GRID = "movers-grid"
MOVERS_NOTE = "movers-note"
NEWLY_GRID = "newly-at-risk-grid"
NEWLY_NOTE = "newly-at-risk-note"
REVENUE_GRAPH = "revenue-movements"
REVENUE_RATES = "revenue-retention-rates"
REVENUE_TABLE = "revenue-table"
REVENUE_NOTE = "revenue-note"

# Monitoring (not "model-": every role sees it, the model view's ids are analysts' only)
MONITOR_PERFORMANCE = "monitor-performance"
MONITOR_CALIBRATION = "monitor-calibration"
MONITOR_DRIFT = "monitor-drift"
MONITOR_NOTE = "monitor-note"

# Model
MODEL_CANDIDATES = "model-candidates"
MODEL_ROC = "model-roc"
MODEL_PR = "model-pr"
MODEL_CALIBRATION = "model-calibration"
MODEL_LIFT = "model-lift"
MODEL_WARNING = "model-warning"  # small-sample warning of the selection's curves
THRESHOLD = "threshold-slider"
CONFUSION = "confusion-matrix"
THRESHOLD_METRICS = "threshold-metrics"

# Prediction card
PREDICT_FIELD = "predict-field"  # pattern-matching type: {"type": PREDICT_FIELD, "feature": <f>}
PREDICT_SUBMIT = "predict-submit"
PREDICT_RESULT = "predict-result"
PREDICT_LOAD_ID = "predict-load-id"  # a customer id to fill the form from (what-if)
PREDICT_LOAD = "predict-load"
PREDICT_LOAD_NOTE = "predict-load-note"
USER_NAME = "user-name"
LOGOUT = "logout"
