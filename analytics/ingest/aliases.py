"""Column names and label spellings recognised without a mapping.

Matching ignores case and every non-alphanumeric character (`norm`). Also the names that must
never become features: this dashboard's own outputs, churn look-alikes and personal data.
"""

from __future__ import annotations

import re

from analytics import columns as C

# Alias spellings, in order of preference: the first alias a column matches wins a tie.
# Matching ignores case and every non-alphanumeric character ("Customer ID" == "customer_id").
ALIASES: dict[str, tuple[str, ...]] = {
    C.CUSTOMER_ID: (
        "customer_id",
        "customerid",
        "customer id",
        "customer_number",
        "customer_no",
        "customer_code",
        "customer_key",
        "cust_id",
        "custid",
        "client_id",
        "clientnum",
        "client_number",
        "account_id",
        "account_number",
        "acct_id",
        "user_id",
        "subscriber_id",
        "member_id",
        "id",
        "phone number",
    ),
    C.CHURNED: (
        "churned",
        "churn",
        "exited",
        "attrition",
        "attrition_flag",
        "is_churn",
        "is_churned",
        "has_churned",
        "churn_flag",
        "churn_label",
        "churn_value",
        "churn_status",
        "churned_flag",
        "left",
        "has_left",
        "cancelled",
        "canceled",
        "is_cancelled",
        # generic names, taken as the label only when the column holds exactly two values
        "target",
        "label",
        "class",
        "outcome",
        "status",
    ),
    C.TENURE: (
        "tenure_months",
        "tenure",
        "tenure_in_months",
        "tenure_month",
        "months_as_customer",
        "months_on_book",
        "account length",
        "account_length_months",
        "customer_tenure",
        "months_active",
        "months_subscribed",
        "subscription_months",
        "membership_months",
        "lifetime_months",
        "lifetime",
    ),
    C.MONTHLY_REVENUE: (
        "monthly_revenue",
        "monthlycharges",
        "monthly_charges",
        "monthly_charge",
        "monthly_fee",
        "monthly_fees",
        "monthly_spend",
        "monthly_payment",
        "monthly_amount",
        "monthly_bill",
        "monthly_price",
        "monthly_recurring_revenue",
        "mrr",
        "arpu",
        "revenue_monthly",
    ),
    C.TOTAL_REVENUE: (
        "total_revenue",
        "totalcharges",
        "total_charges",
        "total_charge",
        "total_spend",
        "total_spent",
        "total_paid",
        "total_amount",
        "total_billed",
        "revenue_to_date",
        "lifetime_value_to_date",
        "ltv_to_date",
        "cumulative_revenue",
    ),
    C.SIGNUP_DATE: (
        "signup_date",
        "sign_up_date",
        "start_date",
        "join_date",
        "joined_date",
        "joining_date",
        "date_joined",
        "subscription_start",
        "subscription_start_date",
        "registration_date",
        "registered_at",
        "activation_date",
        "enrollment_date",
        "onboarding_date",
        "customer_since",
        "created_at",
        "account_created",
    ),
    C.CHURN_DATE: (
        "churn_date",
        "churned_at",
        "churned_date",
        "date_of_churn",
        "end_date",
        "cancel_date",
        "cancellation_date",
        "cancelled_at",
        "canceled_at",
        "termination_date",
        "exit_date",
        "leave_date",
        "left_date",
        "subscription_end",
        "subscription_end_date",
    ),
}
BINARY_ONLY_ALIASES = frozenset({"target", "label", "class", "outcome", "status"})

# Canonical columns whose look-alikes would leak the outcome or identify rows if kept (the label
# and churn_date look-alikes, and every name of leaving, are judged by analytics.leaks).
EXCLUSIVE_CANONICAL = (C.CUSTOMER_ID, C.CHURNED, C.SIGNUP_DATE, C.CHURN_DATE)
PERSONAL = frozenset(
    {
        "name",
        "surname",
        "firstname",
        "lastname",
        "fullname",
        "customername",
        "clientname",
        "email",
        "emailaddress",
        "mail",
        "phone",
        "phonenumber",
        "telephone",
        "mobile",
        "mobilenumber",
        "address",
        "streetaddress",
        "street",
        "ipaddress",
        "ssn",
    }
)

# Label spellings, compared case-folded and without accents ("Não" == "nao", "Sí" == "si").
# A value with a negating word is "not churned" ("Not churned", "Existing Customer", "Nein");
# otherwise an affirming word or a churn word makes it "churned" ("Attrited Customer", "Oui").
# Yes/no and true/false particles in the languages (and spreadsheet locales) exports come from:
NEGATIVE_PARTICLES = frozenset(
    {
        "no", "not", "non", "never", "false",
        "nao", "nein", "nee", "nej", "nei",  # pt, de, nl, sv/da, no
        "faux", "falsch", "falso", "falsa", "onwaar", "falskt", "falsk",  # Excel FALSE by locale
    }
)  # fmt: skip
POSITIVE_PARTICLES = frozenset(
    {
        "yes", "true",
        "oui", "ja", "si", "sim", "jah",  # fr, de/nl/sv, es/it, pt
        "vrai", "wahr", "verdadero", "verdadeiro", "vero", "waar", "sant", "sann",  # Excel TRUE
    }
)  # fmt: skip
# Words that describe staying: a column whose other value is unknown is their complement.
NEGATIVE_WORDS = NEGATIVE_PARTICLES | frozenset(
    {
        "stay",
        "stayed",
        "stays",
        "staying",
        "existing",
        "retained",
        "retain",
        "active",
        "current",
        "remain",
        "remained",
        "renewed",
        "loyal",
        "kept",
    }
)
POSITIVE_WORDS = POSITIVE_PARTICLES
POSITIVE_STEMS = (
    "churn",
    "attrit",
    "exit",
    "left",
    "leav",
    "cancel",
    "lost",
    "quit",
    "terminat",
    "gone",
    "closed",
    "inactive",
    "defect",
    "lapse",
    "depart",
)
# One-letter labels mean different words in different languages ("S" is Si in Spanish, "N" is
# No, Nein, Non or Nao), so they are read only as a pair found in the column, never alone.
LETTER_PAIRS = {
    frozenset("yn"): "y",  # yes / no
    frozenset("tf"): "t",  # true / false
    frozenset("sn"): "s",  # si, sim / no, nao
    frozenset("on"): "o",  # oui / non
    frozenset("jn"): "j",  # ja / nein, nee, nej
    frozenset("vf"): "v",  # vrai, verdadero, vero / faux, falso
}
# A column holding a single letter: the letters that mean the same in every pair they are in.
LETTER_ALONE = {"y": 1, "t": 1, "n": 0, "f": 0}


def norm(name: object) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def alias_rank(canonical: str) -> dict[str, tuple[int, str]]:
    """Normalised alias -> (preference, spelling); the first spelling of a form wins."""
    ranks: dict[str, tuple[int, str]] = {}
    for i, alias in enumerate(ALIASES[canonical]):
        ranks.setdefault(norm(alias), (i, alias))
    return ranks
