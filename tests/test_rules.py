"""Each of the product's rules is defined once in analytics (issue 9: copies drifted apart)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from analytics.config import PROJ_ROOT

RULES = (
    "monthly_probability",
    "clv",
    "customer_value",
    "expected_loss",
    "expected_saving",
    "risk_band",
    "at_threshold",
)


def _definitions() -> tuple[Counter, Counter]:
    functions, constants = Counter(), Counter()
    for path in sorted(Path(PROJ_ROOT, "analytics").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                functions[node.name] += 1
            elif isinstance(node, ast.Assign):
                constants.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return functions, constants


def test_every_rule_has_one_definition():
    functions, constants = _definitions()
    assert {name: functions[name] for name in RULES} == dict.fromkeys(RULES, 1)
    # The cut-off under which a driver is not shown, for reasons and the prediction card alike.
    cut_offs = {name for name in constants if "MIN_DRIVER" in name or "MIN_REASON" in name}
    assert len(cut_offs) == 1, cut_offs
    # One list of the columns scoring adds.
    assert constants["SCORED_COLUMNS"] == 1
    assert not {"SCORED", "_SCORED_COLUMNS"} & set(constants)
