"""validate on small hand-built frames: mapping, typing, repairs and one-line errors."""

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics.ingest.aliases import ALIASES
from analytics.ingest.errors import (
    DataError,
    DuplicateIdError,
    EmptyTableError,
    LabelError,
    MappingError,
    MissingColumnError,
    NegativeRevenueError,
)
from analytics.ingest.mapping import parse_mapping_pairs, resolve_mapping
from analytics.ingest.parse import parse_numbers
from analytics.ingest.validate import ATTR_FIRST_LINE, validate


def text_frame(data: dict) -> pd.DataFrame:
    """A raw frame as read.read_table gives it: every cell text, blank = missing."""
    return pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in data.items()})


def base(n: int = 12) -> dict:
    return {
        "customerID": [f"{i:04d}-AB" for i in range(n)],
        "Churn": ["Yes" if i % 3 == 0 else "No" for i in range(n)],
        "tenure": [str(i * 2) for i in range(n)],
        "Contract": ["Monthly", "One year", "Two year"] * (n // 3),
        "MonthlyCharges": [f"{20 + i}.5" for i in range(n)],
    }


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --- mapping ------------------------------------------------------------------------------------


def test_aliases_are_lower_case_and_cover_every_canonical_column():
    assert set(ALIASES) == set(C.CANONICAL)
    for canonical, aliases in ALIASES.items():
        assert aliases[0] == canonical
        assert all(a == a.lower() for a in aliases)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["customerID", "Churn", "tenure", "MonthlyCharges", "TotalCharges"],
         {"customer_id": "customerID", "churned": "Churn", "tenure_months": "tenure",
          "monthly_revenue": "MonthlyCharges", "total_revenue": "TotalCharges"}),
        (["RowNumber", "CustomerId", "Surname", "Tenure", "Exited"],
         {"customer_id": "CustomerId", "churned": "Exited", "tenure_months": "Tenure"}),
        (["CLIENTNUM", "Attrition_Flag", "Months_on_book"],
         {"customer_id": "CLIENTNUM", "churned": "Attrition_Flag",
          "tenure_months": "Months_on_book"}),
        (["phone number", "account length", "churn"],
         {"customer_id": "phone number", "churned": "churn", "tenure_months": "account length"}),
        ([" Customer ID ", "Monthly-Fee", "Start Date", "Cancellation Date"],
         {"customer_id": "Customer ID", "monthly_revenue": "Monthly-Fee",
          "signup_date": "Start Date", "churn_date": "Cancellation Date"}),
    ],
)
def test_resolve_mapping_recognises_common_spellings(columns, expected):
    assert resolve_mapping(columns) == expected


def test_explicit_mapping_wins_over_aliases():
    mapping = resolve_mapping(["id", "Churn", "Exited"], {"churned": "Exited"})
    assert mapping == {"customer_id": "id", "churned": "Exited"}


def test_explicit_mapping_tolerates_case_but_names_a_missing_column():
    assert resolve_mapping(["ID", "EXITED"], {"churned": "exited"})["churned"] == "EXITED"
    with pytest.raises(MappingError) as exc:
        resolve_mapping(["CustomerId", "Exited", "Tenure"], {"churned": "Exitted"})
    message = one_line(exc)
    assert "Exitted" in message
    assert "did you mean 'Exited'" in message
    assert "Tenure" in message


def test_explicit_mapping_rejects_unknown_canonical_and_double_use():
    with pytest.raises(MappingError, match=r"not a canonical column.*did you mean 'churned'"):
        resolve_mapping(["a", "b"], {"churnd": "a"})
    with pytest.raises(MappingError, match="'a' to both"):
        resolve_mapping(["a", "b"], {"customer_id": "a", "churned": "a"})


def test_parse_mapping_pairs():
    assert parse_mapping_pairs(["churned=Exited", " customer_id = Customer Id "]) == {
        "churned": "Exited", "customer_id": "Customer Id"}
    assert parse_mapping_pairs(["churned=a=b"]) == {"churned": "a=b"}
    for bad in (["churned"], ["churned="], ["=Exited"]):
        with pytest.raises(MappingError, match="canonical=column"):
            parse_mapping_pairs(bad)
    with pytest.raises(MappingError, match="not a canonical column"):
        parse_mapping_pairs(["tenure=Tenure"])
    with pytest.raises(MappingError, match="twice"):
        parse_mapping_pairs(["churned=a", "churned=b"])


def test_ambiguous_label_is_deterministic_noted_and_the_other_column_not_a_feature():
    data = base()
    data["Exited"] = data["Churn"]
    raw = text_frame({"Exited": data["Exited"], **data})  # "Exited" first in the file
    table = validate(raw)
    assert table.mapping["churned"] == "Churn"  # alias order, not file order
    assert any("several columns match" in n and "Exited" in n for n in table.notes)
    assert "Exited" in table.dropped
    assert "Exited" not in table.features


def test_explicit_mapping_names_the_label_and_the_alias_column_is_dropped():
    data = base()
    data["Exited"] = ["1" if c == "No" else "0" for c in data["Churn"]]
    table = validate(text_frame(data), {"churned": "Exited"})
    assert table.mapping["churned"] == "Exited"
    assert table.frame[C.CHURNED].tolist() == [int(c == "No") for c in data["Churn"]]
    assert "Churn" in table.dropped


def test_generic_target_column_is_the_label_only_when_two_valued():
    data = base()
    data["target"] = ["1" if c == "Yes" else "0" for c in data.pop("Churn")]
    assert validate(text_frame(data)).mapping["churned"] == "target"
    data["target"] = ["a", "b", "c"] * 4
    with pytest.raises(MissingColumnError) as exc:
        validate(text_frame(data))
    assert "'target' is not two-valued" in one_line(exc)


# --- errors -------------------------------------------------------------------------------------


def test_a_table_without_an_id_column_numbers_customers_and_says_so():
    """Some public churn tables have no id at all: they still load, named by row."""
    data = base()
    data["Kunde"] = data.pop("customerID")
    table = validate(text_frame(data))
    ids = table.frame[C.CUSTOMER_ID]
    assert ids.is_unique
    assert ids.iloc[0] == "row-1"
    note = next(n for n in table.notes if "no customer_id column" in n)
    assert "--map customer_id=<column>" in note


def test_missing_label_is_an_error_only_when_required():
    data = base()
    data["Gone"] = data.pop("Churn")
    with pytest.raises(MissingColumnError) as exc:
        validate(text_frame(data))
    message = one_line(exc)
    assert "--map churned=<column>" in message
    assert "two-valued columns: Gone" in message
    table = validate(text_frame(data), require_label=False)
    assert not table.has_label
    assert "Gone" in table.categorical


def test_empty_tables():
    with pytest.raises(EmptyTableError, match="no columns"):
        validate(pd.DataFrame())
    with pytest.raises(EmptyTableError, match="header but no rows"):
        validate(text_frame({"customerID": [], "Churn": []}))
    with pytest.raises(EmptyTableError, match=r"every row .* blank"):
        validate(text_frame({"customerID": [None, " "], "Churn": ["", None]}))


def test_duplicate_ids_are_counted_and_listed():
    data = base()
    data["customerID"][1] = data["customerID"][0]
    data["customerID"][2] = data["customerID"][0]
    data["customerID"][4] = data["customerID"][3]
    with pytest.raises(DuplicateIdError) as exc:
        validate(text_frame(data))
    assert "has 2 duplicated ids, e.g. 0000-AB (3 rows), 0003-AB (2 rows)" in one_line(exc)


def test_blank_ids_name_the_rows():
    data = base()
    data["customerID"][5] = " "
    with pytest.raises(DataError, match=r"blank on 1 rows \(rows 6\)"):
        validate(text_frame(data))


def test_negative_revenue_names_the_column_count_and_ids():
    data = base()
    data["MonthlyCharges"][2] = "-5"
    data["MonthlyCharges"][7] = "-1.5"
    with pytest.raises(NegativeRevenueError) as exc:
        validate(text_frame(data))
    message = one_line(exc)
    assert "monthly_revenue (column 'MonthlyCharges') has 2 negative values" in message
    assert "0002-AB, 0007-AB" in message


def test_label_with_three_values_lists_them():
    data = base()
    data["Churn"][0] = "Maybe"
    with pytest.raises(LabelError) as exc:
        validate(text_frame(data))
    message = one_line(exc)
    assert "3 distinct values" in message
    assert "'No' (8 rows)" in message
    assert "'Yes' (3 rows)" in message
    assert "'Maybe' (1 row)" in message


def test_label_whose_meaning_cannot_be_told():
    data = base()
    data["Churn"] = ["red" if c == "Yes" else "blue" for c in data["Churn"]]
    with pytest.raises(LabelError, match="cannot tell which value of churned"):
        validate(text_frame(data))


def test_wrong_column_mapped_as_revenue():
    data = base()
    with pytest.raises(DataError, match="monthly_revenue \\(column 'Contract'\\) is not numeric"):
        validate(text_frame(data), {"monthly_revenue": "Contract"})


def test_negative_tenure():
    data = base()
    data["tenure"][3] = "-2"
    expected = r"tenure_months \(column 'tenure'\) has 1 negative .*0003-AB"
    with pytest.raises(DataError, match=expected):
        validate(text_frame(data))


def test_empty_optional_column_is_treated_as_absent():
    data = base()
    data["TotalCharges"] = [""] * 12
    table = validate(text_frame(data))
    assert C.TOTAL_REVENUE not in table.frame.columns
    assert table.dropped["TotalCharges"] == "empty: no values"
    assert C.TOTAL_REVENUE not in table.mapping


def test_no_tenure_and_no_signup_date():
    data = base()
    del data["tenure"]
    with pytest.raises(MissingColumnError, match=r"no tenure_months column.*no signup_date"):
        validate(text_frame(data))


def test_duplicate_column_names():
    raw = pd.DataFrame([["1", "2"]], columns=["a", " a"])
    with pytest.raises(DataError, match="duplicate column names: a"):
        validate(raw)


# --- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yes", "no"),
    [
        ("Yes", "No"), ("yes", "no"), ("True", "False"), ("1", "0"), ("Y", "N"), ("T", "F"),
        ("1.0", "0.0"), ("churned", "stayed"), ("Attrited Customer", "Existing Customer"),
        ("Churned", "Not churned"), ("Left", "Active"), ("cancelled", "renewed"),
    ],
)
def test_label_spellings(yes, no):
    data = base()
    data["Churn"] = [yes if c == "Yes" else no for c in data["Churn"]]
    table = validate(text_frame(data))
    assert table.frame[C.CHURNED].dtype == np.int8
    assert table.frame[C.CHURNED].tolist() == [int(i % 3 == 0) for i in range(12)]


def test_typed_labels_bool_and_numbers():
    data = base()
    flags = [c == "Yes" for c in data.pop("Churn")]
    expected = [int(f) for f in flags]
    for values in (flags, [int(f) for f in flags], [float(f) for f in flags]):
        raw = text_frame(data).assign(Exited=values)
        assert validate(raw).frame[C.CHURNED].tolist() == expected


def test_single_known_label_value_is_accepted():
    data = base()
    data["Churn"] = ["No"] * 12
    assert validate(text_frame(data)).frame[C.CHURNED].sum() == 0


def test_blank_labels_drop_rows_and_are_reported():
    data = base()
    data["Churn"][3] = ""
    data["Churn"][8] = "N/A"
    table = validate(text_frame(data))
    assert len(table.frame) == 10
    assert table.coercions["churned"] == 2
    assert any("2 rows with a blank label dropped (rows 4, 9)" in n for n in table.notes)
    assert table.frame.index.tolist() == list(range(10))


def test_empty_label_column_when_scoring():
    data = base()
    data["Churn"] = [""] * 12
    table = validate(text_frame(data), require_label=False)
    assert not table.has_label
    assert len(table.frame) == 12
    assert table.dropped == {"Churn": "empty: no values (no label)"}
    with pytest.raises(LabelError, match="no values"):
        validate(text_frame(data))


# --- typing and repairs -------------------------------------------------------------------------


def test_contract_dtypes():
    data = base()
    data["SeniorCitizen"] = ["0", "1"] * 6
    data["Partner"] = ["Yes", "No", "No"] * 4
    table = validate(text_frame(data))
    frame = table.frame
    assert frame[C.CUSTOMER_ID].dtype == "str"
    assert frame[C.TENURE].dtype == np.float64
    assert frame[C.MONTHLY_REVENUE].dtype == np.float64
    assert frame["SeniorCitizen"].dtype == np.float64
    assert isinstance(frame["Partner"].dtype, pd.CategoricalDtype)
    assert frame["Partner"].cat.categories.dtype == "str"
    assert table.numeric == ("tenure_months", "monthly_revenue", "SeniorCitizen")
    assert table.categorical == ("Contract", "Partner")
    assert table.features == (*table.numeric[:2], "Contract", "SeniorCitizen", "Partner")
    assert list(frame.columns[:4]) == ["customer_id", "churned", "tenure_months", "monthly_revenue"]
    assert table.has_label
    assert table.has_revenue
    assert not table.has_dates


def test_missing_tokens_and_whitespace():
    data = base()
    blanks = ["?", "NA", "null", "-", "N/A", ""]
    data["Contract"] = [" Monthly ", *blanks, "One year", *["Monthly"] * 4]
    table = validate(text_frame(data))
    contract = table.frame["Contract"]
    assert contract.isna().sum() == 6
    assert list(contract.cat.categories) == ["Monthly", "One year"]


def test_numeric_column_with_a_few_bad_cells_counts_them():
    data = base(40)
    data["Balance"] = [str(i * 10) for i in range(40)]
    data["Balance"][5] = "oops"
    table = validate(text_frame(data))
    assert table.frame["Balance"].dtype == np.float64
    assert np.isnan(table.frame["Balance"][5])
    assert table.coercions == {"Balance": 1}
    assert any("Balance: 1 cells that are not numbers" in n and "'oops'" in n for n in table.notes)


def test_mostly_text_column_stays_categorical():
    data = base()
    data["Plan"] = ["10", "basic", "premium"] * 4
    table = validate(text_frame(data))
    assert "Plan" in table.categorical
    assert not table.coercions


@pytest.mark.parametrize(
    ("cell", "value"),
    [("29,85", 29.85), ("1.234,50", 1234.5), ("1,234.50", 1234.5), ("$1,234", 1234.0),
     (" 42 ", 42.0), ("1e3", 1000.0)],
)
def test_number_spellings(cell, value):
    assert parse_numbers(pd.Series([cell]))[0] == pytest.approx(value)


def test_decimal_comma_hint_from_a_semicolon_file():
    texts = pd.Series(["1,234", "2,5"])
    assert parse_numbers(texts).tolist() == [1234.0, 2.5]
    assert parse_numbers(texts, decimal=",").tolist() == [1.234, 2.5]


def test_total_revenue_blanks_are_filled_and_noted():
    data = base()
    data["TotalCharges"] = [str(float(t) * 20) for t in data["tenure"]]
    data["TotalCharges"][0] = " "
    table = validate(text_frame(data))
    assert table.frame[C.TOTAL_REVENUE][0] == 0.0  # tenure 0 x monthly
    note = "total_revenue: 1 missing cells filled with tenure_months x monthly_revenue"
    assert note in table.notes
    assert not table.coercions


def test_columns_not_used_as_features_are_dropped_with_a_reason():
    n = 120
    data = base(n)
    data["RowNumber"] = [str(i + 1) for i in range(n)]
    data["Surname"] = [f"Name{i % 7}" for i in range(n)]
    data["Token"] = [f"tok{i}" for i in range(n)]
    data["Country"] = ["FR"] * n
    data["Notes"] = [""] * n
    data["Region"] = [f"r{i // 2}" for i in range(n)]  # many levels, not id-like: kept
    data["Churn Reason"] = ["price" if c == "Yes" else "" for c in data["Churn"]]
    data["p_churn"] = ["0.5"] * (n - 1) + ["0.4"]
    table = validate(text_frame(data), drop=["Contract"])
    reasons = table.dropped
    assert reasons["RowNumber"].startswith("row number")
    assert reasons["Surname"].startswith("personal data")
    assert reasons["Token"].startswith("identifier-like: 120 distinct")
    assert reasons["Country"] == "constant: every row is 'FR'"
    assert reasons["Notes"].startswith("empty")
    assert "leak" in reasons["Churn Reason"]
    assert "scoring" in reasons["p_churn"]
    assert reasons["Contract"] == "dropped by the user (--drop)"
    assert "Region" in table.categorical
    assert not set(reasons) & set(table.frame.columns)


def test_unknown_drop_column():
    with pytest.raises(MappingError, match=r"--drop Contrat.*did you mean 'Contract'"):
        validate(text_frame(base()), drop=["Contrat"])
    with pytest.raises(MappingError, match="both mapped and dropped"):
        validate(text_frame(base()), {"churned": "Churn"}, drop=["Churn"])


def test_blank_rows_are_dropped_and_noted():
    data = base()
    for values in data.values():
        values[4] = ""
    table = validate(text_frame(data))
    assert len(table.frame) == 11
    assert any("1 blank rows dropped (rows 5)" in n for n in table.notes)


def test_file_line_numbers_when_io_provides_them():
    data = base()
    data["Churn"][3] = ""
    raw = text_frame(data)
    raw.attrs[ATTR_FIRST_LINE] = 2
    table = validate(raw)
    assert any("(lines 5)" in n for n in table.notes)


def test_typed_frame_equals_text_frame():
    data = base()
    typed = pd.DataFrame({
        "customerID": data["customerID"],
        "Churn": [c == "Yes" for c in data["Churn"]],
        "tenure": [int(t) for t in data["tenure"]],
        "Contract": pd.Categorical(data["Contract"]),
        "MonthlyCharges": [float(m) for m in data["MonthlyCharges"]],
    })
    pd.testing.assert_frame_equal(
        validate(typed).frame, validate(text_frame(data)).frame
    )


def test_numeric_ids_become_text():
    raw = pd.DataFrame({"CustomerId": [15634602, 15647311], "Exited": [1, 0], "Tenure": [2, 1]})
    assert validate(raw).frame[C.CUSTOMER_ID].tolist() == ["15634602", "15647311"]


# --- dates --------------------------------------------------------------------------------------


def dated() -> dict:
    return {
        "id": ["a", "b", "c", "d"],
        "signup_date": ["2024-01-15", "2024-03-31", "2024-06-01", "not a date"],
        "churn_date": ["2024-04-14", "", "", ""],
        "plan": ["x", "y", "x", "y"],
    }


def test_dates_parse_and_tenure_is_derived():
    table = validate(text_frame(dated()))
    frame = table.frame
    assert frame[C.SIGNUP_DATE].dtype == "datetime64[ns]"
    assert frame[C.SIGNUP_DATE][0] == pd.Timestamp("2024-01-15")
    assert pd.isna(frame[C.SIGNUP_DATE][3])
    # a: Jan 15 -> Apr 14 is 2 whole months; b, c run to Jun 1, the latest date in the data
    assert frame[C.TENURE].tolist()[:3] == [2.0, 2.0, 0.0]
    assert np.isnan(frame[C.TENURE][3])
    assert table.coercions == {"signup_date": 1}
    assert any(n.startswith("tenure_months: derived") and "2024-06-01" in n for n in table.notes)
    # no label column: churned follows churn_date
    assert frame[C.CHURNED].tolist() == [1, 0, 0, 0]
    assert table.has_dates
    assert C.SIGNUP_DATE not in table.features


def test_day_first_and_typed_dates():
    data = dated()
    data["signup_date"] = ["15/01/2024", "31/03/2024", "01/06/2024", ""]
    data["churn_date"] = ["14/04/2024", "", "", ""]
    frame = validate(text_frame(data)).frame
    assert frame[C.SIGNUP_DATE][1] == pd.Timestamp("2024-03-31")
    typed = text_frame(dated()).assign(
        signup_date=pd.to_datetime(["2024-01-15", "2024-03-31", "2024-06-01", None]),
        churn_date=pd.to_datetime(["2024-04-14", None, None, None]).tz_localize("UTC"),
    )
    typed_frame = validate(typed).frame
    pd.testing.assert_series_equal(typed_frame[C.CHURN_DATE], frame[C.CHURN_DATE])


def test_date_like_text_column_is_not_a_feature():
    data = base()
    data["last_login"] = [f"2024-02-{d:02d}" for d in range(1, 13)]
    assert "dates are not features" in validate(text_frame(data)).dropped["last_login"]


@pytest.mark.parametrize(
    ("name", "top", "noted"),
    [("Tenure", 10, True), ("tenure", 72, False), ("tenure_months", 10, False)],
)
def test_a_short_tenure_without_a_unit_is_noted(name, top, noted):
    data = base()
    del data["tenure"]
    data[name] = [str(i % (top + 1)) for i in range(len(data["customerID"]) - 1)] + [str(top)]
    notes = validate(text_frame(data)).notes
    said = [n for n in notes if "if they count years, multiply them by 12" in n]
    assert bool(said) == noted
    if noted:
        assert said[0].startswith(f"tenure_months: read from '{name}' as months")


def test_scored_columns_in_the_input_are_outputs_never_features():
    # A scored export loaded back: value_tier is refused exactly like risk_band.
    data = base()
    data["risk_band"] = ["Low", "Medium", "High"] * 4
    data["value_tier"] = ["Low", "Mid", "High"] * 4
    data["expected_loss"] = [str(i) for i in range(12)]
    table = validate(text_frame(data))
    for column in ("risk_band", "value_tier", "expected_loss"):
        assert column not in table.features
        assert table.dropped[column] == table.dropped["risk_band"]
    assert "output of this dashboard's scoring" in table.dropped["value_tier"]
    assert "Contract" in table.features
