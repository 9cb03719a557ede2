"""Every reference case in ``shared/reference`` must pass through the parity runner.

The cases are the acceptance test of each network and pipeline: a case whose model has no
handler fails here as "not implemented"; nothing is skipped unless the whole reference folder is
absent (then the ``reference_dir`` fixture skips, naming the path it looked at). The whole set is
marked slow (many minutes); quick cases of the Restore and Colorize families also run unmarked in
tests/test_restoration_networks.py and tests/test_colorization.py.

Below them, copies of small cases changed in one way each must FAIL: the runner, not each handler,
decides what a pass needs (see ``weights/parity/runner.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from weights.parity.runner import discover, reference_dir, run_case

_REF = reference_dir()
CASES = discover([_REF]) if _REF.is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("case_path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_reference_case(case_path, reference_dir) -> None:
    result = run_case(case_path)
    assert result.passed, result.line


def test_reference_cases_were_found(reference_dir) -> None:
    assert len(CASES) >= 40, f"expected the full set of reference cases under {reference_dir}, found {len(CASES)}"


# --------------------------------------------------------------------------- cases that must fail
# Copies of small reference cases, each changed in one way a lax runner would let pass.


def _copy_case(reference_dir: Path, tmp_path: Path, family: str, name: str) -> Path:
    target = tmp_path / family / name
    shutil.copytree(reference_dir / family / name, target)
    return target


def _edit_meta(case_dir: Path, **changes: object) -> None:
    meta = json.loads((case_dir / "case.json").read_text())
    meta.update(changes)
    (case_dir / "case.json").write_text(json.dumps(meta))


def test_unchanged_copy_passes(reference_dir: Path, tmp_path: Path) -> None:
    """The control: the copied case passes, so each failure below comes from its one change."""
    result = run_case(_copy_case(reference_dir, tmp_path, "tpsmm", "avd_network"))
    assert result.passed, result.line


def test_network_case_without_io_fails(reference_dir: Path, tmp_path: Path) -> None:
    case_dir = _copy_case(reference_dir, tmp_path, "tpsmm", "avd_network")
    (case_dir / "io.safetensors").unlink()
    result = run_case(case_dir)
    assert not result.passed and "without its io.safetensors" in result.line


def test_unknown_output_fails(reference_dir: Path, tmp_path: Path) -> None:
    case_dir = _copy_case(reference_dir, tmp_path, "tpsmm", "avd_network")
    io = load_file(str(case_dir / "io.safetensors"))
    io["output.stage.made_up_layer"] = torch.zeros(1, 128)
    save_file(io, str(case_dir / "io.safetensors"))
    result = run_case(case_dir)
    assert not result.passed and "output.stage.made_up_layer" in result.line


@pytest.mark.parametrize("kind", ["pipeline", "keys", "banana"])
def test_wrong_kind_fails(reference_dir: Path, tmp_path: Path, kind: str) -> None:
    case_dir = _copy_case(reference_dir, tmp_path, "tpsmm", "avd_network")
    _edit_meta(case_dir, kind=kind)
    result = run_case(case_dir)
    assert not result.passed and "kind" in result.line


def test_file_the_handler_never_reads_fails(reference_dir: Path, tmp_path: Path) -> None:
    case_dir = _copy_case(reference_dir, tmp_path, "tpsmm", "avd_network")
    (case_dir / "expected_extra.png").write_bytes((case_dir / "keys.json").read_bytes())
    result = run_case(case_dir)
    assert not result.passed and "expected_extra.png" in result.line


def test_keys_case_without_keys_fails(reference_dir: Path, tmp_path: Path) -> None:
    case_dir = _copy_case(reference_dir, tmp_path, "bopbtl", "mapping_scratch_hr_keys")
    (case_dir / "keys.json").unlink()
    result = run_case(case_dir)
    assert not result.passed and "keys.json" in result.line


def test_case_is_read_through_its_own_names_and_compares_what_it_carries(reference_dir: Path, tmp_path: Path) -> None:
    """Stage 4 with every file renamed (case.json updated), one expected face and the blended
    photo removed: the handler follows case.json, counts faces from the files present, and passes."""
    source = reference_dir / "bopbtl" / "pipeline_stage4_warp_back_blend"
    meta = json.loads((source / "case.json").read_text())
    stem = Path(meta["input"]["image"]).stem
    case_dir = tmp_path / "bopbtl" / "renamed_stage4"
    (case_dir / "faces_in").mkdir(parents=True)
    (case_dir / "faces_matched").mkdir()
    for k in (1, 2):
        shutil.copy(source / "input_enhanced_faces" / f"{stem}_{k}.png", case_dir / "faces_in" / f"face-{k}-{stem}.png")
    shutil.copy(source / "expected_matched_faces" / f"{stem}_2.png", case_dir / "faces_matched" / f"m{stem}_2.png")
    shutil.copy(source / "io.safetensors", case_dir / "io.safetensors")
    meta["input"]["image"] = str((source / meta["input"]["image"]).resolve())
    meta["input"]["enhanced_faces"] = "faces_in/face-<k>-<stem>.png"
    meta["expected"] = {"matched_faces": "faces_matched/m<stem>_<k>.png", "blended": "not_here.png"}
    (case_dir / "case.json").write_text(json.dumps(meta))
    result = run_case(case_dir)
    assert result.passed, result.line

    (case_dir / "faces_in" / f"face-2-{stem}.png").unlink()  # one input face fewer than the photo has
    result = run_case(case_dir)
    assert not result.passed and "n_faces" in result.line


def test_openpose_near_tie_is_accepted_only_one_pixel_away_and_within_tolerance() -> None:
    """A body peak may land on either of two neighbouring pixels whose smoothed values differ by
    float rounding (1 vs 2 threads); anything farther, or a real difference, still fails."""
    import numpy as np

    from weights.parity.edn_pose import _near_ties

    smoothed = np.zeros((5, 5))
    smoothed[2, 2], smoothed[2, 3], smoothed[4, 4] = 0.500000, 0.500004, 0.3
    ties = (np.array([0]), {0: smoothed})
    expected = np.array([[2.0, 2.0, 0.5, 0.0]])  # (x, y, score, id)
    assert _near_ties(ties, np.array([[2.0, 2.0, 0.5, 0.0]]), expected, 1e-4)  # the same
    assert _near_ties(ties, np.array([[3.0, 2.0, 0.5, 0.0]]), expected, 1e-4)  # one pixel, near tie
    assert not _near_ties(ties, np.array([[3.0, 2.0, 0.5, 0.0]]), expected, 1e-6)  # beyond the tolerance
    assert not _near_ties(ties, np.array([[4.0, 4.0, 0.3, 0.0]]), expected, 1.0)  # two pixels away
