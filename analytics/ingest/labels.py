"""The churn label: which columns can be one, and which value of it means churn."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.ingest.aliases import (
    LETTER_ALONE,
    LETTER_PAIRS,
    NEGATIVE_PARTICLES,
    NEGATIVE_WORDS,
    POSITIVE_STEMS,
    POSITIVE_WORDS,
)
from analytics.ingest.errors import LabelError
from analytics.ingest.messages import named_column
from analytics.ingest.parse import parse_numbers
from analytics.ingest.views import Dates, Numbers, Text, View, as_text

KNOWN_PAIRS = "Yes/No, 1/0, True/False, Churned/Active, Exited/Stayed, Oui/Non, Ja/Nein, Si/No, S/N"


def _words(text: str) -> list[str]:
    """Lower-case words without accents ("Não" -> ["nao"], "Sí" -> ["si"])."""
    plain = unicodedata.normalize("NFKD", text.casefold())
    return re.findall(r"[a-z0-9]+", "".join(c for c in plain if not unicodedata.combining(c)))


def _letter(text: str) -> str | None:
    """The letter of a one-letter label ("S", "n."), else None."""
    words = _words(text)
    return words[0] if len(words) == 1 and len(words[0]) == 1 and words[0].isalpha() else None


def _label_class(text: str) -> tuple[int | None, bool]:
    """(1 = churned, 0 = stayed, None = cannot tell alone; whether a word describes it).

    Letters are left to the column (_letter_classes); a yes/no particle is not a description,
    so its unknown partner is not taken as its complement ("Yes" / "Maybe" is refused)."""
    number = parse_numbers(pd.Series([text], dtype="str"))[0]
    if not np.isnan(number):
        return {1.0: 1, 0.0: 0}.get(float(number)), False
    if _letter(text):
        return None, False
    words = _words(text)
    if any(w in NEGATIVE_WORDS or w == "0" for w in words):
        return 0, any(w in NEGATIVE_WORDS and w not in NEGATIVE_PARTICLES for w in words)
    if any(w in POSITIVE_WORDS or w.startswith(POSITIVE_STEMS) for w in words):
        return 1, any(w.startswith(POSITIVE_STEMS) for w in words)
    if "1" in words:
        return 1, False
    return None, False


def _letter_classes(first: dict[str, str], classes: dict) -> None:
    """Classes of one-letter values, decided from the set the column holds: 'S' with 'N' is
    Si / No; 'M' with 'F' is no known pair and stays undecided."""
    letters = {k: _letter(v) for k, v in first.items() if _letter(v)}
    if not letters:
        return
    if len(letters) == 2:
        positive = LETTER_PAIRS.get(frozenset(letters.values()))
        for k, letter in letters.items():
            classes[k] = (None if positive is None else int(letter == positive), False)
        return
    # alone or beside a word ("Y" with "No"): only a letter that means one thing in every pair
    ((k, letter),) = letters.items()
    classes[k] = (LETTER_ALONE.get(letter), False)


def _label_keys(values: pd.Index) -> pd.Series:
    """One key per distinct label spelling: numbers by value, text case-folded without accents
    ("Sí" and "si" are one value)."""
    numbers = parse_numbers(pd.Series(values, dtype="str"))
    text = pd.Series([" ".join(_words(v)) or v.casefold() for v in values], dtype="str")
    as_number = pd.Series([f"#{x!r}" for x in numbers], dtype="str")
    return as_number.where(~np.isnan(numbers), text)


def _label_groups(view: Text) -> tuple[pd.Series, pd.Series]:
    """(key per distinct value, cell count per key)."""
    keys = _label_keys(view.values)
    counts = pd.Series(view.counts()).groupby(keys.to_numpy()).sum()
    return keys, counts


def is_binary(view: View) -> bool:
    if isinstance(view, Numbers):
        return np.unique(view.values[~view.missing]).size == 2
    if isinstance(view, Dates):
        return False
    # case variants ("Yes", "yes") merge into one key, but never twenty of them
    return 2 <= len(view.values) <= 20 and _label_groups(view)[1].size == 2


def decode_labels(view: View, mapping: Mapping[str, str]) -> np.ndarray:
    """int8 per row: 1 churned, 0 not, -1 blank."""
    text = as_text(view)
    keys, counts = _label_groups(text)
    where = named_column(C.CHURNED, mapping)
    first: dict[str, str] = {}  # one spelling per key, for messages
    for value, key in zip(text.values, keys, strict=True):
        first.setdefault(key, value)
    ranked = counts.sort_values(ascending=False, kind="stable")
    found = ", ".join(f"'{first[k]}' ({n} row{'s' if n != 1 else ''})" for k, n in ranked.items())
    if counts.size > 2:
        raise LabelError(
            f"{where} has {counts.size} distinct values, expected two (churned / not): "
            f"{found}; recode it or choose another column with --map churned=<column>"
        )
    read = {k: _label_class(first[k]) for k in counts.index}
    _letter_classes({k: first[k] for k in counts.index}, read)
    classes = {k: c for k, (c, _) in read.items()}
    described = {k: c for k, (c, says) in read.items() if c is not None and says}
    if len(classes) == 2 and None in classes.values() and len(described) == 1:
        # "Closed" / "Open": a churn (or stay) word's partner is its complement
        ((k_known, v_known),) = described.items()
        classes = {k: (v_known if k == k_known else 1 - v_known) for k in classes}
    if None in classes.values() or (len(classes) == 2 and len(set(classes.values())) < 2):
        raise LabelError(
            f"cannot tell which value of {where} means churn: {found} are not a known pair "
            f"(such as {KNOWN_PAIRS}); recode it as 1/0 or Yes/No, or map another column "
            "with --map churned=<column>"
        )
    per_value = np.array([classes[k] for k in keys] + [-1], dtype=np.int8)
    return per_value[text.codes]
