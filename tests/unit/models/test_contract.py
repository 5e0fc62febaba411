"""The ranking contract of models/base.py: every check of models.checks on every model variant."""

from __future__ import annotations

import pytest

from models.checks import Check, Subject, subjects, yield_checks

SUBJECTS = {s.label: s for s in subjects()}
CASES = [(label, check) for label, s in SUBJECTS.items() for check in yield_checks(s)]


def test_every_model_is_checked_with_and_without_deep():
    assert {"cooccurrence", "hybrid", "online", "popularity"} <= set(SUBJECTS)
    if "hybrid(deep)" not in SUBJECTS:
        pytest.skip("models.deep.model (torch sequence model) not importable")
    assert any(check.__name__ == "check_sources" for label, check in CASES if label == "hybrid(deep)")


@pytest.mark.parametrize(("label", "check"), CASES, ids=[f"{label}-{c.__name__.removeprefix('check_')}"
                                                        for label, c in CASES])
def test_contract(label: str, check: Check) -> None:
    subject: Subject = SUBJECTS[label]
    check(subject)
