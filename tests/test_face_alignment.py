"""face-alignment's FAN and S3FD as registry checkpoints: listed with the package's own URLs, their
fixture files load into the package's networks, and with them in the weights cache the
face-alignment path runs (noise landmarks from fixture weights, but the real code path); without
them dlib is used. Images are tiny: each FAN pass (image + mirror) costs seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.common import faces
from weights import registry, store

SALT = "face-alignment-test"


@pytest.fixture(scope="module")
def fa_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights cache holding fixture FAN and S3FD files, written once for this module."""
    path = tmp_path_factory.mktemp("fa-weights")
    previous = os.environ.get("NOSTALGIA_WEIGHTS_DIR")
    os.environ["NOSTALGIA_WEIGHTS_DIR"] = str(path)
    try:
        for cid in (faces.FAN_CHECKPOINT, faces.S3FD_CHECKPOINT):
            store.write_fixture(registry.get(cid), salt=SALT)
    finally:
        if previous is None:
            os.environ.pop("NOSTALGIA_WEIGHTS_DIR")
        else:
            os.environ["NOSTALGIA_WEIGHTS_DIR"] = previous
    return path


@pytest.fixture()
def fa_weights_dir(fa_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOSTALGIA_WEIGHTS_DIR", str(fa_cache))
    return fa_cache


def test_registry_holds_the_files_the_installed_package_downloads() -> None:
    from face_alignment.api import models_urls
    from face_alignment.detection.sfd.sfd_detector import models_urls as detector_urls

    fan, s3fd = registry.get(faces.FAN_CHECKPOINT), registry.get(faces.S3FD_CHECKPOINT)
    assert fan.sources[0].url == models_urls["2DFAN-4"] and s3fd.sources[0].url == detector_urls["s3fd"]
    for ckpt in (fan, s3fd):
        assert ckpt.sources[0].url.rsplit("/", 1)[1] == ckpt.filename
        assert ckpt.sha256_prefix and f"-{ckpt.sha256_prefix}." in ckpt.filename
        assert ckpt.sha256 and ckpt.sha256.startswith(ckpt.sha256_prefix) and ckpt.licence.startswith("BSD-3-Clause")
    ids = [c.id for c in registry.all_checkpoints()]
    assert faces.FAN_CHECKPOINT in ids and faces.S3FD_CHECKPOINT in ids


def test_fixture_files_load_into_the_packages_networks_as_the_package_loads_them(fa_cache: Path) -> None:
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    for cid, network in ((faces.FAN_CHECKPOINT, FAN(4)), (faces.S3FD_CHECKPOINT, s3fd())):
        path = fa_cache / cid / registry.get(cid).filename
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        assert all(torch.isfinite(v).all() for v in network.state_dict().values())


def test_a_file_whose_hash_does_not_match_its_name_fails_verify(weights_dir: Path) -> None:
    ckpt = registry.get(faces.S3FD_CHECKPOINT)
    path = store.checkpoint_path(ckpt)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the published detector")
    st = store.verify(ckpt)
    assert st.state == "corrupt" and ckpt.sha256_prefix in st.detail


def test_without_the_files_dlib_gives_the_landmarks(weights_dir: Path) -> None:
    assert faces.landmarker_name() == "dlib"
    gray = np.full((48, 48, 3), 128, np.uint8)
    assert faces.best_face_landmarks(gray) == []  # dlib finds no face in a plain square


def test_with_fixture_files_the_face_alignment_path_runs(fa_weights_dir: Path) -> None:
    assert faces.landmarker_name() == "face-alignment"
    gray = np.full((48, 48, 3), 128, np.uint8)
    found = faces.best_face_landmarks(gray, max_faces=1)
    # dlib finds nothing here (test above); the noise detector of the fixture finds boxes, FAN fits them
    assert len(found) == 1 and found[0].shape == (68, 2) and np.isfinite(found[0]).all()
    in_box = faces.best_landmarks_in_box(gray, (8, 8, 40, 40))
    assert in_box.shape == (68, 2) and np.isfinite(in_box).all()


@pytest.mark.slow  # two faces, four FAN passes
def test_dance_face_points_come_through_face_alignment(fa_weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.dance import face_points as fp
    from pipelines.dance.skeleton import L_EAR, L_EYE, NECK, NOSE, R_EAR, R_EYE

    calls: list[int] = []
    real = faces.face_alignment_model

    def counted() -> object:
        calls.append(1)
        return real()

    monkeypatch.setattr(faces, "face_alignment_model", counted)
    body = np.zeros((23, 3))
    for joint, (x, y) in {NOSE: (32, 28), R_EYE: (28, 24), L_EYE: (36, 24), R_EAR: (24, 26), L_EAR: (40, 26), NECK: (32, 50)}.items():
        body[joint] = (x, y, 0.9)
    frame = np.full((64, 64, 3), 128, np.uint8)
    points = fp.face_points(frame, body)
    assert calls and points is not None and points.shape == (fp.NUM_FACE_POINTS, 3) and np.isfinite(points).all()


def test_the_size_estimate_matches_the_fixture_file(fa_cache: Path) -> None:
    """No size is published for these files: ``weights list`` shows the networks' float32 bytes,
    which is what a file holding only the state dict weighs (the pickle adds well under 1 %)."""
    for cid in (faces.FAN_CHECKPOINT, faces.S3FD_CHECKPOINT):
        ckpt = registry.get(cid)
        estimate = registry.parameter_bytes(ckpt)
        on_disk = (fa_cache / cid / ckpt.filename).stat().st_size
        assert estimate is not None and 0 <= on_disk - estimate < 0.01 * estimate
        assert registry.size_label(ckpt) == f"~{registry.human_bytes(estimate)} est."


def test_fixture_face_alignment_files_are_announced_where_they_are_used(fa_weights_dir: Path) -> None:
    """Noise landmarks change Animate's best frame and Dance's face points: the banner names those
    tabs and the CLI's dance command warns."""
    import argparse

    import app as app_module
    from pipelines.__main__ import fixture_warning

    assert app_module.tabs_using(list(faces.FACE_ALIGNMENT_CHECKPOINTS)) == ["Animate", "Dance"]
    warning = fixture_warning(argparse.Namespace(command="dance"))
    assert warning is not None and faces.FAN_CHECKPOINT in warning and faces.S3FD_CHECKPOINT in warning


def test_the_offline_fallback_keeps_dlib_rather_than_fixture_landmarks(weights_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """run_app.sh's ``weights fixture --missing all`` leaves FAN and S3FD absent (dlib's real landmarks
    stay in use); naming them writes their fixtures."""
    from weights import __main__ as cli

    ids = list(faces.FACE_ALIGNMENT_CHECKPOINTS)
    monkeypatch.setattr(cli, "_select", lambda names: [registry.get(i) for i in ids] if names == ["all"] else [registry.get(i) for i in names])
    assert cli.main(["fixture", "--missing", "all"]) == 0
    assert capsys.readouterr().out.count("dlib's 68-point predictor") == len(ids)
    assert all(store.status(registry.get(i)).state == "missing" for i in ids)
    assert faces.landmarker_name() == "dlib"
    assert cli.main(["fixture", "--missing", faces.S3FD_CHECKPOINT]) == 0
    assert store.status(registry.get(faces.S3FD_CHECKPOINT)).state != "missing"
