"""Pure figure builders: DataFrame / dict in, go.Figure out, one shared template.

No data work beyond shaping for display; no Dash imports.
"""

from __future__ import annotations

import functools
import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analytics import columns as C
from analytics.formatting import money_axis, money_hover

PALETTE = ["#2563eb", "#f97316", "#10b981", "#a855f7", "#ef4444", "#0ea5e9", "#eab308", "#64748b"]
RISK_COLORS = {"Low": "#10b981", "Medium": "#f59e0b", "High": "#ef4444"}


def colour_map(names) -> dict[str, str]:
    """One colour per name (e.g. the segments in their fixed order), so a segment has the
    same colour in the doughnut, the split trend and the survival curves, whatever is filtered."""
    return {str(name): PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _colour(colours: dict[str, str] | None, name, i: int) -> str:
    return (colours or {}).get(str(name), PALETTE[i % len(PALETTE)])


CHURN = "#ef4444"
RETAIN = "#2563eb"
MUTED = "#94a3b8"

# Plotly draws its toolbar (the modebar, about 30 px tall) over the top right of a figure: the
# title sits in a band below it, and that band pushes the plot down (automargin) whatever
# margin a figure asks for, so no title is ever under the toolbar, at any width.
MODEBAR_BAND = 30

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        colorway=PALETTE,
        margin={"l": 48, "r": 16, "t": 40, "b": 40},
        paper_bgcolor="white",
        plot_bgcolor="white",
        hoverlabel={"font_size": 12},
        # automargin: long tick labels and axis titles widen the margin instead of being cut
        xaxis={
            "gridcolor": "#eef2f7",
            "zeroline": False,
            "automargin": True,
            "title": {"font": {"size": 11}},  # a phone's plot is ~300 px wide
        },
        yaxis={
            "gridcolor": "#eef2f7",
            "zeroline": False,
            "automargin": True,
            "title": {"font": {"size": 11}},
        },
        legend={"orientation": "h", "y": -0.2},
        title={
            "x": 0.01,
            "xanchor": "left",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": MODEBAR_BAND, "b": 8},
            "automargin": True,
            "font": {"size": 14},
        },
    )
)


# Plotly draws text as a small HTML subset (<a href>, <b>, <br>, <span style>): a category level
# or column name holding "<a href=...>" would become a link. Every string that comes from data
# is escaped, so it shows as the text it is.
_DATA_TEXT = ("x", "y", "labels", "text", "hovertext", "name", "customdata")


def plain_text(value: str) -> str:
    """`value` as plotly shows it literally (its own markup escaped)."""
    return html.escape(str(value), quote=False)


def _has_markup(values) -> bool:
    """Whether any text in `values` (a string or a nested array of them) needs escaping; one
    pass over the strings joined, since a scatter carries thousands of them per trace."""
    if isinstance(values, str):
        return "<" in values or ">" in values or "&" in values
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "OUS":
            return False  # numbers and dates
        values = values.ravel()
    elif not isinstance(values, list | tuple):
        return False
    strings = []
    for v in values:
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, list | tuple | np.ndarray) and _has_markup(v):
            return True
    return _has_markup("".join(strings))


def _escaped(values):
    if isinstance(values, str):
        return plain_text(values)
    if isinstance(values, list | tuple | np.ndarray) and _has_markup(values):
        return [_escaped(v) for v in values]
    return values


def _data_as_text(builder):
    """Escape the data-borne text of the figure `builder` returns (its traces' labels, names,
    texts, hover texts; its title and annotations). Its own hover templates keep their markup."""

    @functools.wraps(builder)
    def build(*args, **kwargs) -> go.Figure:
        fig = builder(*args, **kwargs)
        for trace in fig.data:
            for attr in _DATA_TEXT:
                value = getattr(trace, attr, None) if attr in trace else None
                if _has_markup(value):  # reassigning costs plotly a validation: only if needed
                    trace[attr] = _escaped(value)
        if fig.layout.title.text:
            fig.layout.title.text = plain_text(fig.layout.title.text)
        for note in fig.layout.annotations:
            note.text = plain_text(note.text)
        return fig

    return build


def _base(title: str) -> go.Figure:
    """A figure in the shared template. Its size comes from the page (dcc.Graph is responsive
    and the layout sets each graph's height), so figures never set one."""
    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, title=title, autosize=True)
    return fig


@_data_as_text
def message(text: str, title: str = "") -> go.Figure:
    """An empty chart that says why it is empty ("no customers match", "not available ...")."""
    fig = _base(title)
    fig.add_annotation(
        text=text,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 13, "color": "#475569"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


@_data_as_text
def monthly_trend(
    trend: pd.DataFrame,
    by: str | None = None,
    colours: dict[str, str] | None = None,
    snapshots: list[dict] | None = None,
) -> go.Figure:
    """Monthly churn rate (left axis) and retention rate (right axis) per calendar month;
    `snapshots` (as_of, predicted_churn, realised_churn) adds what each snapshot predicted
    (mean p) beside the churn it saw realised, on the churn axis."""
    fig = _base("Monthly churn and retention")
    if by and by in trend.columns:
        for i, (name, grp) in enumerate(trend.groupby(by, observed=True, sort=False)):
            fig.add_scatter(
                x=grp["month"],
                y=grp["churn_rate"],
                name=str(name),
                mode="lines",
                line={"color": _colour(colours, name, i)},
                hovertemplate="%{x|%b %Y}: churn %{y:.1%}<extra>" + plain_text(name) + "</extra>",
            )
        fig.update_yaxes(title="monthly churn rate", tickformat=".0%", rangemode="tozero")
        return fig
    fig.add_scatter(
        x=trend["month"],
        y=trend["churn_rate"],
        name="Churn rate",
        mode="lines+markers",
        line={"color": CHURN},
        customdata=np.c_[trend["churned"], trend["active_start"]],
        hovertemplate="%{x|%b %Y}: churn %{y:.2%}<br>%{customdata[0]:,} of %{customdata[1]:,}"
        " active at month start<extra></extra>",
    )
    fig.add_scatter(
        x=trend["month"],
        y=trend["retention_rate"],
        name="Retention rate",
        mode="lines",
        line={"color": RETAIN, "dash": "dot"},
        yaxis="y2",
        hovertemplate="%{x|%b %Y}: retention %{y:.2%}<extra></extra>",
    )
    extra = _snapshot_churn(fig, snapshots or [])
    # Retention is 1 - churn: its axis is the churn axis turned upside down (same span), so
    # the two lines mirror each other instead of appearing to move on their own.
    rates = np.r_[trend["churn_rate"].to_numpy(dtype=float), extra]
    top = float(np.nanmax(rates)) * 1.15 if np.isfinite(rates).any() else 0.0
    top = top if top > 0 else 0.01
    fig.update_layout(
        margin={"r": 64},
        yaxis={"title": "monthly churn rate", "tickformat": ".1%", "range": [0, top]},
        yaxis2={
            "title": "retention rate (1 - churn)",
            "tickformat": ".1%",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "range": [1 - top, 1],
        },
    )
    return fig


def _snapshot_churn(fig: go.Figure, snapshots: list[dict]) -> np.ndarray:
    """Add each snapshot's predicted and realised churn (its window after as_of) to `fig`;
    returns the rates drawn, for the axis range."""
    if not snapshots:
        return np.array([])
    rows = sorted(snapshots, key=lambda s: s["as_of"])
    x = [r["as_of"] for r in rows]
    predicted = [r.get("predicted_churn") for r in rows]
    realised = [r.get("realised_churn") for r in rows]
    fig.add_scatter(
        x=x,
        y=predicted,
        name="Predicted (snapshot mean p)",
        mode="markers",
        marker={"symbol": "diamond-open", "size": 9, "color": "#7c3aed", "line": {"width": 2}},
        hovertemplate="snapshot of %{x|%Y-%m-%d}: predicted churn %{y:.2%}<extra></extra>",
    )
    fig.add_scatter(
        x=x,
        y=realised,
        name="Realised (snapshot)",
        mode="markers",
        marker={"symbol": "x", "size": 8, "color": "#0f172a"},
        hovertemplate="snapshot of %{x|%Y-%m-%d}: realised churn %{y:.2%}<extra></extra>",
    )
    return np.array([v for v in predicted + realised if v is not None], dtype=float)


@_data_as_text
def kaplan_meier(
    km: pd.DataFrame, by: str | None = None, colours: dict[str, str] | None = None
) -> go.Figure:
    """Retention over tenure (Kaplan-Meier) with its 95% band; at-risk counts on hover."""
    fig = _base("Retention over tenure (Kaplan-Meier)")
    groups = km.groupby(by, observed=True, sort=False) if by and by in km.columns else [("All", km)]
    for i, (name, grp) in enumerate(groups):
        color = _colour(colours, name, i)
        if not by:
            fig.add_scatter(
                x=np.r_[grp["time"], grp["time"][::-1]],
                y=np.r_[grp["ci_high"], grp["ci_low"][::-1]],
                fill="toself",
                fillcolor="rgba(37,99,235,0.12)",
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                name="95% interval",
            )
        fig.add_scatter(
            x=grp["time"],
            y=grp["survival"],
            name=str(name),
            mode="lines",
            line={"shape": "hv", "color": color},
            customdata=np.c_[grp["at_risk"], grp["events"]],
            hovertemplate="month %{x}: %{y:.1%} retained<br>at risk %{customdata[0]:,}, "
            "churned %{customdata[1]:,}<extra>" + str(name) + "</extra>",
        )
    fig.update_xaxes(title="tenure (months)")
    fig.update_yaxes(title="share still a customer", tickformat=".0%", range=[0, 1.02])
    return fig


@_data_as_text
def cohort_heatmap(cohorts: list[dict], months: list[int]) -> go.Figure:
    """Share of each signup cohort still active k months after signup; `cohorts` and `months`
    (the k of each cell) as services.overview.cohorts gives them."""
    width = len(months)
    z = [
        [np.nan if v is None else v for v in c["retention"]]
        + [np.nan] * (width - len(c["retention"]))
        for c in cohorts
    ]
    fig = _base("Cohort retention")
    fig.add_heatmap(
        z=np.asarray(z, dtype=float),
        x=[str(k) for k in months],
        y=[c["cohort"] for c in cohorts],
        colorscale="Blues",
        zmin=0,
        zmax=1,
        colorbar={"tickformat": ".0%", "title": ""},
        hovertemplate="cohort %{y}, month %{x}: %{z:.1%} still active<extra></extra>",
    )
    fig.update_xaxes(title="months since signup")
    fig.update_yaxes(title="signup month", autorange="reversed", automargin=True, type="category")
    return fig


@_data_as_text
def segment_doughnut(sizes: pd.DataFrame, colours: dict[str, str] | None = None) -> go.Figure:
    """Segment sizes; `sizes` has columns level, customers (and churn_rate for hover)."""
    fig = _base("Segments")
    fig.add_pie(
        labels=sizes["level"],
        values=sizes["customers"],
        hole=0.55,
        sort=False,
        marker={"colors": [_colour(colours, name, i) for i, name in enumerate(sizes["level"])]},
        textinfo="percent",
        customdata=sizes["churn_rate"],
        hovertemplate="%{label}<br>%{value:,} customers (%{percent})<br>churn %{customdata:.1%}"
        "<extra></extra>",
    )
    fig.update_layout(
        legend={"orientation": "h", "y": -0.05, "x": 0.5, "xanchor": "center"},
        margin={"l": 16, "r": 16, "t": 40, "b": 16},
    )
    return fig


@_data_as_text
def rate_bars(
    rates: pd.DataFrame,
    title: str,
    *,
    base_rate: float | None = None,
    selection_rate: float | None = None,
) -> go.Figure:
    """Churn rate per group with Wilson 95% intervals and counts; small groups greyed. A dashed
    line marks all customers' rate (`base_rate`) and, when the filters narrow the base, a
    dotted one the selection's (`selection_rate`)."""
    fig = _base(title)
    small = rates["small"].to_numpy(dtype=bool)
    colors = np.where(small, MUTED, CHURN)
    labels = [str(v) for v in rates["level"]]
    text = [
        f"{r:.1%} (n={n:,}{', too small to read' if s else ''})"
        for r, n, s in zip(rates["churn_rate"], rates["customers"], small, strict=True)
    ]
    fig.add_bar(
        y=labels,
        x=rates["churn_rate"],
        orientation="h",
        marker={"color": colors},
        error_x={
            "type": "data",
            "symmetric": False,
            "array": rates["ci_high"] - rates["churn_rate"],
            "arrayminus": rates["churn_rate"] - rates["ci_low"],
            "color": "#334155",
            "thickness": 1.2,
        },
        customdata=np.c_[rates["customers"], rates["churned"], rates["ci_low"], rates["ci_high"]],
        hovertemplate="%{y}: churn %{x:.1%} (95% CI %{customdata[2]:.1%}–%{customdata[3]:.1%})"
        "<br>%{customdata[1]:,} of %{customdata[0]:,} churned<extra></extra>",
    )
    # Labels sit just past each interval, so they never overlap the error bars.
    fig.add_scatter(
        y=labels,
        x=rates["ci_high"],
        mode="text",
        text=["  " + t for t in text],  # a gap after the interval's cap
        textposition="middle right",
        textfont={"size": 11, "color": "#334155"},
        hoverinfo="skip",
        cliponaxis=False,
    )
    lines = [(base_rate, "all customers", "dash", "center")]
    if selection_rate is not None and selection_rate != base_rate:
        # Both labels above the bars (below, they would sit on the axis's numbers), each on the
        # side of its line away from the other so they never overlap.
        low_first = selection_rate > base_rate
        lines = [
            (base_rate, "all customers", "dash", "right" if low_first else "left"),
            (selection_rate, "this selection", "dot", "left" if low_first else "right"),
        ]
    for rate, name, dash, side in lines:
        if rate is not None and math.isfinite(rate):
            fig.add_vline(
                x=rate,
                line={"dash": dash, "color": "#475569"},
                annotation_text=f"{name} {rate:.1%}",
                annotation_position="top",
                annotation={"xanchor": side, "yanchor": "bottom"},
            )
    upper = float(np.nanmax(rates["ci_high"])) if len(rates) else 1.0
    fig.update_xaxes(tickformat=".0%", range=[0, min(1.0, upper * 1.45 + 0.05)], title="churn rate")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(showlegend=False)
    return fig


@_data_as_text
def importance_bars(importance: pd.DataFrame, top: int = 15) -> go.Figure:
    imp = importance.head(top)
    fig = _base("What drives churn: permutation importance")
    fig.add_bar(
        y=imp["feature"],
        x=imp["importance_mean"],
        orientation="h",
        marker={"color": RETAIN},
        error_x={"type": "data", "array": imp["importance_std"], "color": "#334155"},
        hovertemplate="%{y}: ROC-AUC drops by %{x:.4f} when shuffled<extra></extra>",
    )
    fig.update_xaxes(title="drop in ROC-AUC (held-out folds)")
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


@_data_as_text
def value_risk_scatter(
    sample: pd.DataFrame, *, threshold: float, value_cut: float, total: int, currency: str
) -> go.Figure:
    """Value against churn probability, money in `currency`; the high-value at-risk quadrant
    shaded."""
    shown = f" (a sample of {len(sample):,} of {total:,})" if len(sample) < total else ""
    fig = _base(f"Value x risk{shown}")
    for band in ("Low", "Medium", "High"):
        part = sample[sample[C.RISK_BAND] == band]
        if part.empty:
            continue
        fig.add_scatter(
            x=part[C.P_CHURN],
            y=part[C.VALUE],
            mode="markers",
            name=f"{band} risk",
            marker={"color": RISK_COLORS[band], "size": 6, "opacity": 0.6},
            # Ids as text and numbers as numbers: a mixed object array costs plotly a deep copy
            # of every cell (20 ms for 5,000 points).
            text=part[C.CUSTOMER_ID].astype(str).to_numpy(),
            customdata=part[C.EXPECTED_LOSS].to_numpy(),
            hovertemplate=f"%{{text}}<br>p %{{x:.1%}}, value {money_hover('y', currency)}<br>"
            f"expected loss {money_hover('customdata', currency)}<extra></extra>",
        )
    ymax = float(sample[C.VALUE].max()) if len(sample) else 1.0
    fig.add_shape(
        type="rect",
        x0=threshold,
        x1=1,
        y0=value_cut,
        y1=ymax * 1.05,
        fillcolor="rgba(239,68,68,0.08)",
        line={"color": CHURN, "dash": "dot"},
        layer="below",
    )
    fig.add_annotation(
        x=1,
        y=ymax * 1.05,
        text="high value, high risk",
        showarrow=False,
        xanchor="right",
        yanchor="top",
        font={"color": CHURN},
    )
    fig.update_xaxes(title="churn probability p", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title="value (at average risk)", **money_axis(currency))
    return fig


@_data_as_text
def planner_curve(curve: pd.DataFrame, best_n: int, currency: str) -> go.Figure:
    fig = _base("Net benefit by number of customers contacted")
    fig.add_scatter(
        x=curve["n"],
        y=curve["net_benefit"],
        mode="lines",
        name="net benefit",
        line={"color": RETAIN},
        hovertemplate=f"contact %{{x:,}}: net {money_hover('y', currency)}<extra></extra>",
    )
    fig.add_scatter(
        x=curve["n"],
        y=curve["saved_value"],
        mode="lines",
        name="expected saved value",
        line={"color": "#10b981", "dash": "dot"},
        hovertemplate=f"contact %{{x:,}}: saved {money_hover('y', currency)}<extra></extra>",
    )
    fig.add_scatter(
        x=curve["n"],
        y=curve["cost"],
        mode="lines",
        name="contact cost",
        line={"color": MUTED, "dash": "dash"},
        hovertemplate=f"contact %{{x:,}}: cost {money_hover('y', currency)}<extra></extra>",
    )
    fig.add_vline(
        x=best_n,
        line={"color": CHURN, "dash": "dash"},
        annotation_text=f"best N = {best_n:,}",
        annotation_position="top",
    )
    fig.update_xaxes(title="customers contacted (by expected loss, highest first)")
    fig.update_yaxes(title=f"amount ({currency})", **money_axis(currency))
    return fig


@_data_as_text
def roc_curve(curves: dict, auc: float) -> go.Figure:
    fig = _base(f"ROC curve (AUC {auc:.3f})")
    fig.add_scatter(
        x=curves["fpr"],
        y=curves["tpr"],
        mode="lines",
        line={"color": RETAIN},
        name="model",
        hovertemplate="FPR %{x:.2f}, TPR %{y:.2f}<extra></extra>",
    )
    fig.add_scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        line={"dash": "dot", "color": MUTED},
        name="chance",
        hoverinfo="skip",
    )
    fig.update_xaxes(title="false positive rate", range=[0, 1])
    fig.update_yaxes(title="true positive rate (recall)", range=[0, 1])
    return fig


@_data_as_text
def pr_curve(curves: dict, ap: float, base_rate: float) -> go.Figure:
    fig = _base(f"Precision-recall (average precision {ap:.3f})")
    fig.add_scatter(
        x=curves["recall"],
        y=curves["precision"],
        mode="lines",
        line={"color": RETAIN},
        name="model",
        hovertemplate="recall %{x:.2f}, precision %{y:.2f}<extra></extra>",
    )
    fig.add_hline(
        y=base_rate,
        line={"dash": "dot", "color": MUTED},
        annotation_text=f"base rate {base_rate:.1%}",
    )
    fig.update_xaxes(title="recall", range=[0, 1])
    fig.update_yaxes(title="precision", range=[0, 1.02])
    return fig


@_data_as_text
def calibration(curves: dict) -> go.Figure:
    fig = _base("Calibration (out-of-fold)")
    fig.add_scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        line={"dash": "dot", "color": MUTED},
        name="perfect",
        hoverinfo="skip",
    )
    fig.add_scatter(
        x=curves["prob_pred"],
        y=curves["prob_true"],
        mode="lines+markers",
        line={"color": RETAIN},
        name="model",
        hovertemplate="predicted %{x:.1%}, observed %{y:.1%}<extra></extra>",
    )
    fig.update_xaxes(title="mean predicted probability", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title="observed churn rate", tickformat=".0%", range=[0, 1])
    return fig


@_data_as_text
def lift_bars(deciles: pd.DataFrame) -> go.Figure:
    """Churn rate per score decile relative to the base rate (decile 1 = highest scores)."""
    fig = _base("Lift by score decile")
    fig.add_bar(
        x=deciles["decile"],
        y=deciles["lift"],
        marker={"color": RETAIN},
        customdata=deciles["churn_rate"],
        hovertemplate="decile %{x}: lift %{y:.2f}x (churn %{customdata:.1%})<extra></extra>",
    )
    fig.add_hline(y=1, line={"dash": "dot", "color": MUTED})
    fig.update_xaxes(title="score decile (1 = highest risk)", dtick=1)
    fig.update_yaxes(title="lift over base rate")
    return fig


@_data_as_text
def confusion(tp: int, fp: int, fn: int, tn: int) -> go.Figure:
    fig = _base("Confusion matrix at the threshold")
    z = [[tp, fn], [fp, tn]]
    fig.add_heatmap(
        z=z,
        x=["predicted churn", "predicted stay"],
        y=["churned", "stayed"],
        colorscale=[[0, "#eff6ff"], [1, "#2563eb"]],
        showscale=False,
        text=[[f"{v:,}" for v in row] for row in z],
        texttemplate="%{text}",
        hovertemplate="%{y}, %{x}: %{z:,}<extra></extra>",
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(automargin=True)
    return fig


@_data_as_text
def driver_bars(
    deltas: pd.Series, title: str = "Why: change in p vs a typical customer"
) -> go.Figure:
    """Per-customer drivers: positive = raises this customer's churn probability."""
    d = deltas.sort_values(key=np.abs, ascending=False).head(8)[::-1]
    fig = _base(title)
    fig.add_bar(
        y=list(d.index),
        x=d.to_numpy() * 100,
        orientation="h",
        marker={"color": [CHURN if v > 0 else "#10b981" for v in d.to_numpy()]},
        hovertemplate="%{y}: %{x:+.1f} pts<extra></extra>",
    )
    fig.update_xaxes(
        title="percentage points of churn probability", zeroline=True, zerolinecolor="#475569"
    )
    fig.update_yaxes(automargin=True)
    return fig


# -- over time: revenue retention and monitoring -----------------------------------------------

MOVEMENTS = (  # (key, label, colour, sign): the additions first, then what was lost
    ("new", "New", "#10b981", 1),
    ("reactivation", "Reactivation", "#14b8a6", 1),
    ("expansion", "Expansion", "#2563eb", 1),
    ("contraction", "Contraction", "#f59e0b", -1),
    ("churned", "Churned", "#ef4444", -1),
)


def _amount(row: dict, key: str) -> float:
    value = row.get(key)
    return float(value) if value is not None else 0.0


@_data_as_text
def revenue_movements(months: list[dict], currency: str) -> go.Figure:
    """Each month's MRR movements (services.history.revenue): new, reactivation and expansion
    stacked up, contraction and churned stacked down, and the net movement as a line."""
    fig = _base("MRR movements per month")
    x = [m["month"] for m in months]
    for key, label, colour, sign in MOVEMENTS:
        fig.add_bar(
            x=x,
            y=[sign * _amount(m, key) for m in months],
            name=label,
            marker={"color": colour},
            hovertemplate=f"%{{x|%b %Y}}: {label.lower()} {money_hover('y', currency)}"
            "<extra></extra>",
        )
    net = [
        m["net"] if m.get("net") is not None else sum(s * _amount(m, k) for k, _, _, s in MOVEMENTS)
        for m in months
    ]
    fig.add_scatter(
        x=x,
        y=net,
        name="Net movement",
        mode="lines+markers",
        line={"color": "#0f172a", "width": 2},
        hovertemplate=f"%{{x|%b %Y}}: net {money_hover('y', currency)}<extra></extra>",
    )
    fig.update_layout(barmode="relative", legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(tickformat="%b %Y")  # ticks as the width allows
    fig.update_yaxes(title=f"MRR ({currency})", zeroline=True, zerolinecolor="#475569",
                     **money_axis(currency))  # fmt: skip
    return fig


@_data_as_text
def revenue_rates(months: list[dict]) -> go.Figure:
    """Gross and net revenue retention per month (and revenue churn), 100% marked."""
    fig = _base("Gross and net revenue retention")
    x = [m["month"] for m in months]
    series = (
        ("nrr", "Net revenue retention (NRR)", RETAIN, "solid"),
        ("grr", "Gross revenue retention (GRR)", "#10b981", "dash"),
    )
    for key, label, colour, dash in series:
        fig.add_scatter(
            x=x,
            y=[m.get(key) for m in months],
            name=label,
            mode="lines+markers",
            line={"color": colour, "dash": dash},
            hovertemplate=f"%{{x|%b %Y}}: {key.upper()} %{{y:.1%}}<extra></extra>",
        )
    fig.add_hline(y=1, line={"dash": "dot", "color": MUTED})
    fig.update_xaxes(tickformat="%b %Y")
    fig.update_yaxes(title="share of MRR at the month's start", tickformat=".0%")
    fig.update_layout(legend={"orientation": "h", "y": -0.3})
    return fig


@_data_as_text
def realised_performance(rows: list[dict]) -> go.Figure:
    """Realised ROC-AUC and PR-AUC per snapshot (services.history.monitoring) beside the
    ROC-AUC the model expected from cross-validation, and the top-decile lift on its own axis.
    Lines join the snapshots a model scored out of time; one it scored on its own training
    data (in sample, cross-validated scores) is an open marker beside them."""
    fig = _base("Realised performance per snapshot")
    rows = sorted(rows, key=lambda r: r["as_of"])
    outside = [r for r in rows if not r.get("in_sample")]
    inside = [r for r in rows if r.get("in_sample")]
    lines = (
        ("realised_roc_auc", "Realised ROC-AUC", RETAIN, "solid", "y"),
        ("expected_roc_auc", "Expected ROC-AUC", MUTED, "dash", "y"),
        ("realised_pr_auc", "Realised PR-AUC", "#10b981", "solid", "y"),
        ("realised_lift", "Top-decile lift (right axis)", "#f97316", "dot", "y2"),
    )
    for key, label, colour, dash, axis in lines:
        value = "%{y:.2f}x" if axis == "y2" else "%{y:.3f}"
        fig.add_scatter(
            x=[r["as_of"] for r in outside],
            y=[r.get(key) for r in outside],
            name=label,
            mode="lines+markers",
            line={"color": colour, "dash": dash},
            yaxis=axis,
            customdata=[r.get("model_version") for r in outside],
            hovertemplate=f"%{{x|%Y-%m-%d}}: {label.split(' (')[0]} {value}"
            "<br>model %{customdata}<extra></extra>",
        )
    if inside:
        fig.add_scatter(
            x=[r["as_of"] for r in inside],
            y=[r.get("realised_roc_auc") for r in inside],
            name="ROC-AUC in sample",
            mode="markers",
            marker={"symbol": "circle-open", "size": 10, "color": RETAIN, "line": {"width": 2}},
            customdata=[r.get("model_version") for r in inside],
            hovertemplate="%{x|%Y-%m-%d}: ROC-AUC %{y:.3f} on its own training data"
            "<br>model %{customdata}<extra></extra>",
        )
    fig.update_xaxes(title="snapshot (as of)")
    fig.update_layout(
        margin={"r": 56},
        yaxis={"title": "ROC-AUC / PR-AUC", "range": [0, 1.02]},
        yaxis2={"title": "lift", "overlaying": "y", "side": "right", "showgrid": False,
                "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.3},
    )  # fmt: skip
    return fig


@_data_as_text
def calibration_deciles(calibration: list[dict], as_of: str) -> go.Figure:
    """Mean predicted p beside the realised churn rate per score decile of one snapshot."""
    fig = _base(f"Calibration by score decile ({as_of})")
    x = [str(c["decile"]) for c in calibration]
    fig.add_bar(
        x=x,
        y=[c["mean_p"] for c in calibration],
        name="Predicted (mean p)",
        marker={"color": "#a5b4fc"},
        hovertemplate="decile %{x}: predicted %{y:.1%}<extra></extra>",
    )
    fig.add_bar(
        x=x,
        y=[c["churn_rate"] for c in calibration],
        name="Realised churn rate",
        marker={"color": CHURN},
        customdata=[c.get("n") for c in calibration],
        hovertemplate="decile %{x}: realised %{y:.1%} of %{customdata:,}<extra></extra>",
    )
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title="score decile (1 = highest risk)", type="category")
    fig.update_yaxes(title="churn rate", tickformat=".0%", rangemode="tozero")
    return fig
