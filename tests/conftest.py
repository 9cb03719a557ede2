"""Shared test fixtures: the reference folder, a private weights cache, the running app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from weights.parity.runner import reference_dir as _reference_dir

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser and load tests are slow too, so ``-m "not slow"`` leaves them out without a second mark."""
    for item in items:
        if item.get_closest_marker("browser") or item.get_closest_marker("load"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` (or ``NOSTALGIA_REFERENCE_DIR``); tests that need it skip, with
    the reason, only when the folder is absent."""
    path = _reference_dir()
    if not path.is_dir():
        pytest.skip(f"reference cases not found at {path} (set NOSTALGIA_REFERENCE_DIR)")
    return path


@pytest.fixture()
def weights_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty, private weights cache for one test."""
    path = tmp_path / "weights"
    path.mkdir()
    monkeypatch.setenv("NOSTALGIA_WEIGHTS_DIR", str(path))
    yield path


@pytest.fixture(autouse=True)
def _dlib_landmarks_unless_the_test_owns_its_weights(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own weights cache may hold face-alignment's files (downloaded, or fixtures from
    ``python -m weights fixture all``); a test that does not bring its own weights cache gets
    dlib's landmarks, as on CI's empty cache, whatever that cache holds."""
    if any(name.endswith("weights_dir") for name in request.fixturenames):
        return
    from pipelines.common import faces

    monkeypatch.setattr(faces, "face_alignment_weights_present", lambda: False)


os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def session_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One weights cache for the in-process app, shared by the whole session."""
    path = tmp_path_factory.mktemp("session-weights")
    previous = os.environ.get("NOSTALGIA_WEIGHTS_DIR")
    os.environ["NOSTALGIA_WEIGHTS_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("NOSTALGIA_WEIGHTS_DIR", None)
    else:
        os.environ["NOSTALGIA_WEIGHTS_DIR"] = previous


@pytest.fixture(scope="session")
def ensure_fixtures(session_weights_dir: Path):
    """``ensure_fixtures(["deoldify/artistic", ...])`` writes fixture checkpoints once per session
    into the app's weights cache (tab tests call it before using the client)."""
    from weights import registry, store

    def ensure(ids: list[str], salt: str = "fixture") -> None:
        for cid in ids:
            ckpt = registry.get(cid)
            if store.fixture_info(ckpt) is None:
                store.write_fixture(ckpt, salt=salt)

    return ensure


@pytest.fixture(scope="session")
def app_server(session_weights_dir: Path):
    """The whole app launched in-process on 127.0.0.1 (a free port)."""
    import app as app_module

    args = app_module.parse_args(["--host", "127.0.0.1", "--port", "0", "--queue-size", "32"])
    demo = app_module.build_app()
    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=f"{app_module.LIMITS.max_upload_mb:g}mb",
        css=app_module.CSS,
    )
    yield demo
    demo.close()


@pytest.fixture(scope="session")
def app_client(app_server):
    """A ``gradio_client.Client`` connected to the in-process app."""
    from gradio_client import Client

    return Client(app_server.local_url, verbose=False)
