"""Every reference case in ``shared/reference`` must pass through the parity runner.

The cases are the acceptance test of each network and pipeline: a case whose model has no
handler fails here as "not implemented"; nothing is skipped unless the whole reference folder is
absent (then the ``reference_dir`` fixture skips, naming the path it looked at).
"""

from __future__ import annotations

import pytest

from weights.parity.runner import discover, reference_dir, run_case

_REF = reference_dir()
CASES = discover([_REF]) if _REF.is_dir() else []


@pytest.mark.slow  # many minutes: the whole acceptance set (quick cases of Restore and Colorize also run in their own tests)
@pytest.mark.parametrize("case_path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_reference_case(case_path, reference_dir) -> None:
    result = run_case(case_path)
    assert result.passed, result.line


def test_reference_cases_were_found(reference_dir) -> None:
    assert len(CASES) >= 40, f"expected the full set of reference cases under {reference_dir}, found {len(CASES)}"
