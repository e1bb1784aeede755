"""Exports as they come: label spellings of other languages and tools, rows whose field count
is not the header's, subscription logs, day counts offered as tenure; messy copies of the
Telco file (generated in tmp_path, never kept)."""

import csv
import io

import numpy as np
import pandas as pd
import pytest

from analytics import columns as C
from analytics.ingest import read
from analytics.ingest import subscriptions as subs
from analytics.ingest import validate as validate_module
from analytics.ingest.errors import (
    DuplicateIdError,
    LabelError,
    MissingColumnError,
    NotATableError,
)
from analytics.ingest.validate import validate


def text_frame(data: dict) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in data.items()})


def small(yes: str, no: str, n: int = 12) -> pd.DataFrame:
    return text_frame(
        {
            "customerID": [f"{i:04d}" for i in range(n)],
            "Churn": [yes if i % 3 == 0 else no for i in range(n)],
            "tenure": [str(i * 2) for i in range(n)],
        }
    )


def one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


# --- labels -------------------------------------------------------------------------------------

SPELLINGS = [
    ("VRAI", "FAUX"), ("Vrai", "Faux"), ("Oui", "Non"), ("OUI", "NON"), ("Ja", "Nein"),
    ("Sí", "No"), ("Si", "No"), ("sì", "no"), ("S", "N"), ("Churned", "Active"),
    ("Exited", "Stayed"), ("TRUE", "FALSE"), ("WAHR", "FALSCH"), ("Verdadero", "Falso"),
    ("VERDADEIRO", "FALSO"), ("Sim", "Não"), ("SIM", "NAO"), ("Vero", "Falso"), ("YES", "no"),
    ("Yés", "Nó"), ("O", "N"), ("J", "N"), ("V", "F"), ("Y", "N"), ("T", "F"),
    ("Ja", "Nee"), ("Inactive", "Active"), ("Closed", "Open"),
]  # fmt: skip


@pytest.mark.parametrize(("yes", "no"), SPELLINGS)
def test_label_spellings_of_other_languages_and_tools(yes, no):
    expected = [int(i % 3 == 0) for i in range(12)]
    assert validate(small(yes, no)).frame[C.CHURNED].tolist() == expected
    # the meaning does not hang on which value is the more frequent
    flipped = validate(small(no, yes)).frame[C.CHURNED].tolist()
    assert flipped == [1 - e for e in expected]


def test_one_letter_labels_are_read_from_the_pair_in_the_column():
    # 'N' alone means no in every pair; 'S' alone could be Si or Stayed: refused
    assert validate(small("N", "N")).frame[C.CHURNED].sum() == 0
    with pytest.raises(LabelError) as exc:
        validate(small("S", "S"))
    assert "'S' (12 rows)" in one_line(exc)
    # two letters that are no known pair (a gender column mapped as the label)
    with pytest.raises(LabelError) as exc:
        validate(small("M", "F"))
    message = one_line(exc)
    assert message.startswith("cannot tell which value of churned (column 'Churn') means churn:")
    assert "'F' (8 rows), 'M' (4 rows) are not a known pair" in message
    assert "Oui/Non" in message
    assert "--map churned=<column>" in message
    with pytest.raises(LabelError, match="'S' \\(4 rows\\) are not a known pair"):
        validate(small("S", "F"))


def test_a_particle_with_an_unknown_partner_is_refused_but_a_churn_word_is_complemented():
    with pytest.raises(LabelError, match="'Maybe' \\(8 rows\\), 'Yes' \\(4 rows\\) are not"):
        validate(small("Yes", "Maybe"))
    with pytest.raises(LabelError, match="'Peut-être' \\(8 rows\\), 'Oui' \\(4 rows\\) are not"):
        validate(small("Oui", "Peut-être"))
    assert validate(small("Cancelled", "Paying")).frame[C.CHURNED].sum() == 4


def test_accented_and_plain_spellings_are_one_value():
    data = small("Sí", "No")
    data.loc[3, "Churn"] = "si"
    data.loc[4, "Churn"] = "NO"
    assert validate(data).frame[C.CHURNED].tolist()[:6] == [1, 0, 0, 1, 0, 0]


# --- rows whose field count is not the header's ------------------------------------------------


def test_quoted_delimiters_and_line_breaks_stay_valid(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text(
        'id,note,tenure,churn\n1,"a, b",3,Yes\n2,"two\nlines, and ""quotes""",4,No\n'
        '3,,5,No\n4,"x",,"No"\n'
    )
    table = read.load_table(path)
    assert len(table.frame) == 4
    assert table.frame["note"].tolist()[:2] == ["a, b", 'two\nlines, and "quotes"']


def test_a_short_row_is_refused_even_with_quoted_line_breaks(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text('id,note,tenure,churn\n1,"two\nlines",3,Yes\n2,x,4\n3,y,5,No\n')
    with pytest.raises(NotATableError) as exc:
        read.read_table(path)
    assert one_line(exc) == (
        "cut.csv: line 4 (1 row) has 3 fields where the header has 4; cells are missing: "
        "complete the rows or save the file again from its source"
    )


def test_longer_rows_are_all_named(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("id,tenure,churn\n1,2,Yes\n2,3,No,\n3,4,Yes\n4,5,No,,\n5,1,2,3,Yes\n")
    with pytest.raises(NotATableError) as exc:
        read.read_table(path)
    assert one_line(exc) == (
        "long.csv: lines 5, 6 (2 rows) have 5 fields, line 3 (1 row) has 4 fields where the "
        "header has 3; a cell holding ',' must be quoted (\"...\"): save the file again from "
        "its source"
    )
    path.write_text("id,tenure,churn\n1,2,Yes\n2,3,No,,\n")
    with pytest.raises(NotATableError, match="empty cells past the header's: remove the extra"):
        read.read_table(path)


# --- subscription logs --------------------------------------------------------------------------

PLANS = {"basic": 20.0, "team": 50.0, "business": 120.0}


def subscription_log(accounts: int = 500, per: int = 10, seed: int = 0) -> pd.DataFrame:
    """`per` consecutive subscriptions per account; about 30% of accounts end their last one."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(accounts):
        start = pd.Timestamp("2019-01-01") + pd.Timedelta(days=int(rng.integers(0, 400)))
        churns = rng.random() < 0.3
        for k in range(per):
            plan = str(rng.choice(list(PLANS)))
            seats = int(rng.integers(1, 20))
            end = start + pd.Timedelta(days=int(rng.integers(20, 90)))
            open_ended = k == per - 1 and not churns
            rows.append(
                {
                    "account_id": f"ACC-{a:04d}",
                    "start_date": start.strftime("%Y-%m-%d"),
                    "end_date": "" if open_ended else end.strftime("%Y-%m-%d"),
                    "plan": plan,
                    "seats": str(seats),
                    "MRR": f"{PLANS[plan] * seats / 5:.2f}",
                    "auto_renew": "Yes" if rng.random() < 0.6 else "No",
                }
            )
            start = end
    return pd.DataFrame(rows, dtype="str")


def test_a_log_of_5000_subscriptions_becomes_500_customers(tmp_path):
    log = subscription_log()
    path = tmp_path / "subscriptions.csv"
    log.to_csv(path, index=False)
    table = read.load_table(path)
    frame = table.frame
    assert len(log) == 5000
    assert len(frame) == 500
    assert frame[C.CUSTOMER_ID].is_unique
    ended = log["end_date"].ne("").groupby(log["account_id"]).all()
    assert frame.set_index(C.CUSTOMER_ID)[C.CHURNED].eq(ended.astype(int)).all()
    churned = int(ended.sum())
    (note,) = [n for n in table.notes if n.startswith("a subscription log")]
    assert note.startswith(
        f"a subscription log of 5,000 rows became 500 customers (one per 'account_id'): "
        f"{churned} churned (every subscription ended by the latest date in the file, "
    )
    assert "plan history as features: subscriptions, upgrades, downgrades, plan_changes" in note
    for feature in ("plan", "seats", "auto_renew", "upgrades", "downgrades", "plan_changes"):
        assert feature in table.features
    assert C.MONTHLY_REVENUE in table.features
    assert "subscriptions" in table.dropped  # 10 per account here: constant


def test_the_cli_reads_a_log_as_of_its_as_of_date(tmp_path):
    from analytics import cli
    from analytics.config import settings_from_env

    path = tmp_path / "subscriptions.csv"
    subscription_log(accounts=60).to_csv(path, index=False)
    args = cli.build_parser().parse_args(["train", "--data", str(path), "--as-of", "2019-06-30"])
    table = cli._load(args, settings_from_env(env={}), lambda _line: None, require_label=True)
    (note,) = [n for n in table.notes if n.startswith("a subscription log")]
    assert "2019-06-30" in note
    assert len(table.frame) < 60  # accounts that start after the date are not customers yet


def test_log_figures_per_account():
    log = text_frame(
        {
            "account_id": ["A", "A", "A", "B", "B", "C"],
            "start_date": ["2023-01-15", "2023-06-15", "2023-09-01", "2023-03-01",
                           "2023-05-01", "2023-12-01"],
            "end_date": ["2023-06-15", "", "", "2023-05-01", "2023-08-01", ""],
            "plan": ["basic", "team", "addon", "team", "basic", "basic"],
            "seats": ["2", "5", "1", "3", "3", "1"],
            "mrr": ["20", "50", "5", "30", "18", "10"],
            "status": ["ended", "active", "active", "ended", "ended", "active"],
        }
    )  # fmt: skip
    table = validate(log)
    frame = table.frame.set_index(C.CUSTOMER_ID)
    # as of 2023-12-01, the latest date: A active (two live subscriptions), B ended, C new
    assert frame[C.CHURNED].to_dict() == {"A": 0, "B": 1, "C": 0}
    assert frame[C.TENURE].to_dict() == {"A": 10.0, "B": 5.0, "C": 0.0}
    assert frame[C.MONTHLY_REVENUE].to_dict() == {"A": 55.0, "B": 18.0, "C": 10.0}
    assert frame["seats"].to_dict() == {"A": 6.0, "B": 3.0, "C": 1.0}
    assert frame["plan"].to_dict() == {"A": "addon", "B": "basic", "C": "basic"}
    assert frame["upgrades"].to_dict() == {"A": 1.0, "B": 0.0, "C": 0.0}
    assert frame["downgrades"].to_dict() == {"A": 1.0, "B": 1.0, "C": 0.0}
    assert frame["plan_changes"].to_dict() == {"A": 2.0, "B": 1.0, "C": 0.0}
    assert str(frame.loc["A", C.SIGNUP_DATE].date()) == "2023-01-15"
    assert table.dropped["status"].startswith("per subscription in a log: churned is derived")
    # given an as-of date, a subscription ending after it is still active
    log.attrs[subs.ATTR_AS_OF] = "2023-07-01"
    table = validate(log)
    frame = table.frame.set_index(C.CUSTOMER_ID)
    assert frame[C.CHURNED].to_dict() == {"A": 0, "B": 0}  # C had not started yet
    assert frame[C.MONTHLY_REVENUE].to_dict() == {"A": 50.0, "B": 18.0}
    assert table.notes[0].startswith("a subscription log of 6 rows became 2 customers")
    assert table.notes[0].endswith("; 2 subscriptions starting after the as-of date left out")


def test_a_log_with_a_mapping_semicolons_and_decimal_commas(tmp_path):
    log = subscription_log(accounts=40, per=3).rename(
        columns={"account_id": "Konto", "start_date": "Beginn", "end_date": "Ende", "MRR": "Betrag"}
    )
    log["Betrag"] = log["Betrag"].str.replace(".", ",", regex=False)
    path = tmp_path / "log.csv"
    path.write_text(log.to_csv(sep=";", index=False), encoding="utf-8-sig")
    table = read.load_table(
        path, {"customer_id": "Konto", "monthly_revenue": "Betrag"}, as_of="2030-01-01"
    )
    assert len(table.frame) == 40
    ended = log["Ende"].ne("").groupby(log["Konto"]).all()
    assert table.frame[C.CHURNED].tolist() == ended.astype(int).tolist()
    assert any("the given as-of date, 2030-01-01" in n for n in table.notes)
    assert table.frame[C.MONTHLY_REVENUE].gt(0).all()


def test_duplicated_rows_with_dates_are_not_a_log():
    rows = text_frame(
        {
            "customer_id": ["A", "A", "B", "C"],
            "signup_date": ["2023-01-01", "2023-01-01", "2023-02-01", "2023-03-01"],
            "churn_date": ["", "", "2023-05-01", ""],
            "churned": ["No", "No", "Yes", "No"],
            "tenure": ["5", "5", "3", "2"],
        }
    )
    with pytest.raises(DuplicateIdError, match=r"1 duplicated ids, e.g. A \(2 rows\)"):
        validate(rows)
    no_dates = rows.drop(columns=["signup_date", "churn_date"])
    with pytest.raises(DuplicateIdError):
        validate(no_dates)


def test_validate_and_the_log_agree_on_the_attrs_keys():
    assert subs._ATTR_NOTES == validate_module.ATTR_NOTES
    assert subs._ATTR_DROPPED == validate_module.ATTR_DROPPED
    assert subs._ATTR_DECIMAL == validate_module.ATTR_DECIMAL


# --- day counts as tenure -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vintage", "days_since_signup", "customer_for_days"])
def test_a_day_count_is_offered_as_tenure_and_converted_when_mapped(name):
    data = small("Yes", "No").drop(columns=["tenure"])
    data[name] = [str(30 * i) for i in range(12)]
    with pytest.raises(MissingColumnError) as exc:
        validate(data)
    assert one_line(exc).startswith(
        f"no tenure_months column: '{name}' looks like days since joining: map it with --map "
        f"tenure_months={name} (days are converted to months); no column matches"
    )
    table = validate(data, {"tenure_months": name})
    assert table.frame[C.TENURE].round(3).tolist()[:3] == [0.0, 0.986, 1.971]
    assert (
        f"tenure_months: read from '{name}' as days since joining and converted to months "
        "(days / 30.44)"
    ) in table.notes


@pytest.mark.parametrize("name", ["YearsAtCompany", "tenure_years", "customer_years"])
def test_a_year_count_is_offered_as_tenure_and_converted_when_mapped(name):
    data = small("Yes", "No").drop(columns=["tenure"])
    data[name] = [str(i % 5) for i in range(12)]
    data["YearsInCurrentRole"] = data["TotalWorkingYears"] = [str(i) for i in range(12)]
    with pytest.raises(MissingColumnError) as exc:
        validate(data)
    assert one_line(exc).startswith(
        f"no tenure_months column: '{name}' looks like years since joining: map it with --map "
        f"tenure_months={name} (years are converted to months); no column matches"
    )
    table = validate(data, {"tenure_months": name})
    assert table.frame[C.TENURE].tolist()[:3] == [0.0, 12.0, 24.0]
    assert (
        f"tenure_months: read from '{name}' as years since joining and converted to months "
        "(years x 12)"
    ) in table.notes


def test_a_last_activity_date_is_offered_with_its_caveat():
    data = small("Yes", "No").drop(columns=["tenure"])
    data["last_login"] = [f"2024-01-{i + 1:02d}" for i in range(12)]
    data["days_since_last_order"] = [str(i) for i in range(12)]  # recency: not offered
    with pytest.raises(MissingColumnError) as exc:
        validate(data)
    assert one_line(exc).startswith(
        "no tenure_months column: 'last_login' holds dates: map it with --map "
        "signup_date=last_login to count tenure from it to the latest date in the file (a date "
        "of last activity: right only if customers joined then); no column matches"
    )


# --- messy copies of the Telco file -------------------------------------------------------------


def telco_rows(telco_path) -> list[list[str]]:
    with open(telco_path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def write_rows(rows, sep=",", newline="\n", quote=csv.QUOTE_MINIMAL) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=sep, lineterminator=newline, quoting=quote).writerows(rows)
    return out.getvalue()


def decimal_comma(rows):
    return [[v.replace(".", ",") for v in r] for r in rows]


def relabel(rows, yes, no):
    return [rows[0], *([*r[:-1], yes if r[-1] == "Yes" else no] for r in rows[1:])]


MESSY_VALID = {
    "vrai_faux.csv": lambda rows: write_rows(relabel(rows, "VRAI", "FAUX")),
    "oui_non_semicolon.csv": lambda rows: write_rows(
        relabel(decimal_comma(rows), "Oui", "Non"), sep=";"
    ),
    "bom_crlf.csv": lambda rows: "\ufeff" + write_rows(rows, newline="\r\n"),
    "quoted.csv": lambda rows: write_rows(rows, quote=csv.QUOTE_ALL),
    "blank_lines.csv": lambda rows: "\n\n" + write_rows(rows).replace("\n", "\n\n", 40) + "\n\n",
    # Excel (French locale) "CSV UTF-8": BOM, sep= line, ';', decimal commas, CRLF, VRAI/FAUX
    "excel_fr.csv": lambda rows: "\ufeffsep=;\r\n"
    + write_rows(relabel(decimal_comma(rows), "VRAI", "FAUX"), sep=";", newline="\r\n"),
    "s_n_tabs.tsv": lambda rows: write_rows(relabel(rows, "S", "N"), sep="\t"),
}


@pytest.fixture(scope="module")
def telco_clean(telco_path):
    return read.load_table(telco_path)


@pytest.mark.parametrize("name", sorted(MESSY_VALID))
def test_messy_but_valid_telco_copies_load_to_the_clean_frame(tmp_path, telco_path, telco_clean,
                                                              name):  # fmt: skip
    path = tmp_path / name
    path.write_bytes(MESSY_VALID[name](telco_rows(telco_path)).encode("utf-8"))
    table = read.load_table(path)
    pd.testing.assert_frame_equal(table.frame, telco_clean.frame)
    assert table.features == telco_clean.features


def test_half_converted_telco_copies_are_refused_in_one_line(tmp_path, telco_path):
    rows = telco_rows(telco_path)
    semicolon = {12, 57, 900, 2000, 3001, 4500, 6000, 7000}  # data rows, as ';' with 29,85
    lines = [
        ";".join(decimal_comma([r])[0]) if i in semicolon else write_rows([r]).rstrip("\n")
        for i, r in enumerate(rows)
    ]
    path = tmp_path / "half.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NotATableError) as exc:
        read.load_table(path)
    message = one_line(exc)
    assert message.startswith("half.csv: lines 13, 58, 901, 2001, 3002, ... (")
    assert message.endswith(
        "where the header has 21; the file mixes ',' (the header's) and ';' (these rows): save "
        "it again with one delimiter"
    )
    # the other way round: a ';' header over 7,035 ',' rows (nothing dropped as blank labels)
    lines = [";".join(rows[0])] + [
        ";".join(decimal_comma([rows[i]])[0]) if i in semicolon else ",".join(rows[i])
        for i in range(1, len(rows))
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NotATableError) as exc:
        read.load_table(path)
    assert one_line(exc) == (
        "half.csv: lines 2, 3, 4, 5, 6, ... (7,035 rows) have 1 field where the header has 21; "
        "the file mixes ';' (the header's) and ',' (these rows): save it again with one delimiter"
    )


def test_a_telco_copy_with_a_cut_row_or_unknown_labels_is_refused(tmp_path, telco_path):
    rows = telco_rows(telco_path)
    cut = [*rows[:100], rows[100][:-1], *rows[101:]]
    path = tmp_path / "cut.csv"
    path.write_text(write_rows(cut))
    with pytest.raises(NotATableError, match=r"^cut\.csv: line 101 \(1 row\) has 20 fields"):
        read.load_table(path)
    path.write_text(write_rows(relabel(rows, "Male", "Female")))
    with pytest.raises(LabelError) as exc:
        read.load_table(path)
    assert one_line(exc).startswith(
        "cut.csv: cannot tell which value of churned (column 'Churn') means churn: 'Female' "
        "(5174 rows), 'Male' (1869 rows) are not a known pair"
    )
