"""Filter state, server-side paging, safe CSV export and threshold views on hand-built frames."""

from __future__ import annotations

import io as stdio
import math

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics import export, filters, paging
from analytics.model import evaluation


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        C.CUSTOMER_ID: ["a", "b", "c", "d", "e", "f"],
        C.TENURE: [1.0, 5.0, 12.0, 24.0, 36.0, np.nan],
        C.SEGMENT: pd.Categorical(["New", "New", "Loyal", "Loyal", "Loyal", "New"]),
        C.RISK_BAND: pd.Categorical(["High", "Low", "Medium", "High", "Low", "Low"],
                                    categories=["Low", "Medium", "High"], ordered=True),
        "contract": pd.Categorical(["M", "M", "Y", "Y", "M", "Y"]),
        C.EXPECTED_LOSS: [5.0, 1.0, 3.0, 9.0, 2.0, 4.0],
        "note": pd.array(["=cmd()", "ok", "+1", "-x", "@a", None], dtype="string"),
    })


ALLOWED = {C.SEGMENT: ["Loyal", "New"], C.RISK_BAND: ["Low", "Medium", "High"],
           "contract": ["M", "Y"]}


def test_query_round_trip_is_stable_and_order_independent():
    a = filters.from_query("?contract=Y&segment=New&segment=Loyal&tenure_min=3", ALLOWED)
    b = filters.from_query("?segment=Loyal&tenure_min=3&segment=New&contract=Y", ALLOWED)
    assert a.key() == b.key()
    assert filters.to_query(a) == filters.to_query(b)
    assert filters.from_query(filters.to_query(a), ALLOWED).key() == a.key()


def test_mask_combines_levels_and_tenure(frame):
    state = filters.from_query("?segment=Loyal&risk=High&risk=Medium&tenure_max=20", ALLOWED)
    assert list(filters.apply(frame, state)[C.CUSTOMER_ID]) == ["c"]
    assert len(filters.apply(frame, filters.FilterState())) == len(frame)


def test_unknown_levels_are_dropped_from_links_but_rejected_by_the_api():
    lenient = filters.from_query("?segment=Gone&contract=M", ALLOWED)
    assert lenient.levels == {"contract": ("M",)}
    with pytest.raises(filters.FilterError, match="Gone"):
        filters.from_query("?segment=Gone", ALLOWED, strict=True)
    with pytest.raises(filters.FilterError, match="unknown filter 'colour'"):
        filters.from_query("?colour=red", ALLOWED, strict=True)
    with pytest.raises(filters.FilterError, match="tenure_min"):
        filters.from_query("?tenure_min=abc", ALLOWED)


def test_a_filter_matching_nobody_gives_an_empty_frame(frame):
    state = filters.from_query("?segment=New&tenure_min=30", ALLOWED)
    assert filters.apply(frame, state).empty


def test_paging_sorts_filters_and_counts(frame):
    sort, conds = paging.from_ag_grid(
        [{"colId": C.EXPECTED_LOSS, "sort": "desc"}],
        {C.TENURE: {"filterType": "number", "type": "greaterThan", "filter": 2}},
    )
    selected = paging.select(frame, conditions=conds, sort=sort)
    rows, total = paging.page(selected, 0, 2)
    assert total == 4
    assert list(rows[C.CUSTOMER_ID]) == ["d", "c"]


def test_paging_or_conditions_and_text_ops(frame):
    _, conds = paging.from_ag_grid(None, {C.CUSTOMER_ID: {
        "filterType": "text", "operator": "OR",
        "conditions": [{"type": "equals", "filter": "A"}, {"type": "startsWith", "filter": "e"}],
    }})
    assert list(paging.select(frame, conditions=conds)[C.CUSTOMER_ID]) == ["a", "e"]


def test_paging_rejects_unknown_columns_and_ops(frame):
    with pytest.raises(paging.PagingError, match="unknown column"):
        paging.select(frame, sort=[("nope", True)])
    with pytest.raises(paging.PagingError, match="does not apply"):
        paging.select(frame, conditions=[paging.Condition(C.TENURE, "contains", "1")])


def test_csv_export_neutralises_formula_cells_but_keeps_numbers(frame):
    text = export.safe_csv(frame[[C.CUSTOMER_ID, "note", C.EXPECTED_LOSS]])
    back = pd.read_csv(stdio.StringIO(text), keep_default_na=False)
    assert list(back["note"]) == ["'=cmd()", "ok", "'+1", "'-x", "'@a", ""]
    assert back[C.EXPECTED_LOSS].tolist() == [5.0, 1.0, 3.0, 9.0, 2.0, 4.0]


def test_threshold_metrics_and_lift_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.1, 0.4, 0.2, 0.1, 0.1, 0.05, 0.3])
    m = evaluation.at_threshold(y, p, 0.5)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    lift = evaluation.lift_by_decile(y, p)
    assert len(lift) == 10
    assert lift.loc[lift["decile"] == 1, "lift"].item() == pytest.approx(1 / 0.3)


def test_precision_is_undefined_when_nobody_is_flagged():
    y = np.array([1, 0, 1, 0])
    m = evaluation.at_threshold(y, np.array([0.3, 0.1, 0.2, 0.05]), 0.5)
    assert (m["flagged"], m["flagged_share"]) == (0, 0.0)
    assert math.isnan(m["precision"])
    assert (m["recall"], m["f1"]) == (0.0, 0.0)
    assert math.isnan(evaluation.at_threshold(np.zeros(3), np.zeros(3), 0.5)["recall"])


def test_a_fold_that_flags_nobody_has_no_precision_and_is_left_out_of_the_mean():
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    # Fold B scores everyone below the threshold chosen on fold A (0.8).
    oof = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.1, 0.25, 0.05])
    folds = [np.arange(4), np.arange(4, 8)]
    per_fold = evaluation.honest_fold_metrics(y, oof, folds)
    assert per_fold[0]["precision"] == 1.0
    assert math.isnan(per_fold[1]["precision"])
    assert per_fold[1]["f1"] == 0.0
    metrics = evaluation.evaluate(y, oof, folds, 0.8, per_fold)
    assert metrics["precision"] == 1.0
    assert metrics["f1"] == pytest.approx(np.mean([f["f1"] for f in per_fold]))


def test_level_index_masks_like_mask(frame):
    # A text column (segment as str, with a blank) and categoricals, levels and tenure.
    frame = frame.assign(**{C.SEGMENT: pd.array(["New", None, "Loyal", "Loyal", "New", "New"],
                                                dtype="str")})
    index = filters.LevelIndex(frame, [C.SEGMENT, C.RISK_BAND, "contract"])
    states = [
        filters.FilterState(),
        filters.FilterState(levels={C.SEGMENT: ("New",)}),
        filters.FilterState(levels={C.SEGMENT: ("Loyal", "New"), "contract": ("Y",)}),
        filters.FilterState(levels={C.RISK_BAND: ("High", "Medium")}, tenure_max=20.0),
        filters.FilterState(levels={C.RISK_BAND: ("Gone",)}),  # unknown level: nobody
        filters.FilterState(tenure_min=5.0, tenure_max=24.0),  # NaN tenure: left out
    ]
    for state in states:
        np.testing.assert_array_equal(index.mask(state), filters.mask(frame, state))


def test_first_in_a_fixed_order_is_a_stable_sample():
    rng = np.random.default_rng(0)
    order = rng.permutation(100_000)
    mask = rng.random(100_000) < 0.01
    sample = filters.first_in(order, mask, 500)
    assert len(sample) == 500
    assert mask[sample].all()
    # Exactly the selected positions that come first in the order.
    np.testing.assert_array_equal(sample, order[mask[order]][:500])
    everyone = filters.first_in(order, mask, 10**6)
    assert sorted(everyone) == list(np.flatnonzero(mask))
    assert len(filters.first_in(order, np.zeros(100_000, dtype=bool), 5)) == 0


def test_lift_of_ranked_labels_equals_lift_by_decile():
    rng = np.random.default_rng(3)
    p = rng.integers(0, 20, 5003) / 20  # ties
    y = (rng.random(5003) < p).astype(np.int8)
    ranked = y[np.argsort(-p, kind="stable")]
    pd.testing.assert_frame_equal(
        evaluation.lift_of_ranked(ranked), evaluation.lift_by_decile(y, p)
    )


def test_csv_export_writes_whole_numbers_as_integers_and_rounds_the_rest():
    frame = pd.DataFrame(
        {
            "tenure": [1.0, 24.0, np.nan],
            "p": [0.6935333927004965, 0.1, np.nan],
            "loss": [1234.56789, np.inf, 0.0],
        }
    )
    lines = export.safe_csv(frame).splitlines()
    assert lines == ["tenure,p,loss", "1,0.6935,1234.5679", "24,0.1,inf", ",,0.0"]
