"""Security: what the running server refuses to serve, what it refuses to accept, what it never
unpickles. The threat model and the limits are in docs/SECURITY.md.

Every file-route request goes to the in-process app on 127.0.0.1; each refusal test has a
positive control (a file the app itself produced is served), so a broken route cannot pass.
"""

from __future__ import annotations

import ast
import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SECRET = "nostalgia-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def base(app_server) -> str:
    return app_server.local_url.rstrip("/")


@pytest.fixture(scope="module")
def http() -> Iterator:
    import httpx

    with httpx.Client(timeout=60, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file outside everything the app serves, with a recognisable content."""
    path = tmp_path_factory.mktemp("private") / "secret.txt"
    path.write_text(SECRET)
    return path


@pytest.fixture(scope="module")
def served_output(app_server, ensure_fixtures, tmp_path_factory) -> str:
    """A URL the app itself produced (a colorized PNG): the positive control for the file route."""
    from gradio_client import Client, handle_file

    from pipelines.common.device import MODELS

    ensure_fixtures(["deoldify/artistic"])
    MODELS.unload("deoldify/artistic:generator@cpu")
    photo = tmp_path_factory.mktemp("in") / "gray.png"
    Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))).save(photo)
    client = Client(app_server.local_url, verbose=False, download_files=False)
    _pair, download, _note = client.predict(handle_file(str(photo)), "artistic", 7, True, api_name="/colorize")
    return download["url"]


def _refused(response, *, secret: str | None = SECRET) -> None:
    assert response.status_code in (400, 403, 404, 405), (response.status_code, response.text[:200])
    body = response.text
    assert "root:x:" not in body and (secret is None or secret not in body)


def test_own_output_is_served(http, served_output: str) -> None:
    response = http.get(served_output)
    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")


TRAVERSALS = [
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=../../../../../../etc/passwd",
    "/gradio_api/file=..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/gradio_api/file=%2fetc%2fpasswd",
    "/gradio_api/file=/proc/self/environ",
    "/gradio_api/file/etc/passwd",
    "/gradio_api/file=SECRET",
    "/gradio_api/file=APP",
    "/gradio_api/file=WEIGHTS",
    "/gradio_api/file=UPLOAD_DIR/../../etc/passwd",
    "/gradio_api/file=UPLOAD_DIR/..%2f..%2fetc/passwd",
    "/static/../../../../etc/passwd",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/gradio_api/file=http://127.0.0.1:PORT/config",
]


@pytest.mark.parametrize("route", TRAVERSALS)
def test_files_outside_the_outputs_are_refused(http, base, app_server, secret_file: Path, served_output, route) -> None:
    from gradio.utils import get_upload_folder

    from weights import registry, store

    url = (
        route.replace("SECRET", str(secret_file))
        .replace("APP", str(ROOT / "app.py"))
        .replace("WEIGHTS", str(store.checkpoint_path(registry.get("deoldify/artistic"))))
        .replace("UPLOAD_DIR", get_upload_folder())
        .replace("PORT", str(app_server.server_port))
    )
    _refused(http.get(base + url))


def test_symlink_in_the_upload_folder_is_refused(http, base, secret_file: Path, served_output: str) -> None:
    """A link placed where uploads live (e.g. by an archive extracted there) must not expose its target."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    links = {"secret.png": secret_file, "passwd.png": Path("/etc/passwd"), "app.png": ROOT / "app.py"}
    try:
        for name, target in links.items():
            (folder / name).symlink_to(target)
            _refused(http.get(f"{base}/gradio_api/file={folder / name}"))
            _refused(http.get(f"{base}/gradio_api/file={quote(str(folder / name))}"))
    finally:
        for name in links:
            (folder / name).unlink(missing_ok=True)
        folder.rmdir()


def test_result_folders_are_not_browsable(http, base, served_output: str) -> None:
    """Only files are served: not the folder of a result, nor the app's own output root."""
    from pipelines.common.media import outputs_root

    folder = served_output.split("/gradio_api/file=", 1)[1].rsplit("/", 1)[0]
    _refused(http.get(f"{base}/gradio_api/file={folder}"), secret=None)
    _refused(http.get(f"{base}/gradio_api/file={outputs_root()}"), secret=None)


def test_uploaded_html_is_never_served_as_a_page(http, base, tmp_path: Path) -> None:
    """An upload is stored as bytes and served back as a download, never rendered (no stored XSS)."""
    page = tmp_path / "photo.html"
    page.write_text("<html><script>document.title='pwned'</script></html>")
    with page.open("rb") as fh:
        response = http.post(f"{base}/gradio_api/upload", files={"files": (page.name, fh, "text/html")})
    assert response.status_code == 200
    stored = response.json()[0]
    served = http.get(f"{base}/gradio_api/file={stored}")
    assert served.status_code == 200
    assert "text/html" not in served.headers.get("content-type", "")
    assert served.headers.get("content-disposition", "").startswith("attachment")


def test_upload_size_limit_is_enforced(http, base, app_server, tmp_path: Path) -> None:
    """``max_file_size`` comes from LIMITS and Gradio refuses bigger uploads before storing them."""
    from pipelines.common.limits import LIMITS

    assert app_server.max_file_size == int(LIMITS.max_upload_mb * 1024 * 1024) or app_server.max_file_size == int(
        LIMITS.max_upload_mb * 1000 * 1000
    )
    saved = app_server.max_file_size
    app_server.max_file_size = 256 * 1024  # the same check at a size a test can afford
    try:
        big = tmp_path / "big.png"
        big.write_bytes(os.urandom(300 * 1024))
        with big.open("rb") as fh:
            response = http.post(f"{base}/gradio_api/upload", files={"files": (big.name, fh, "image/png")})
        assert response.status_code == 413, (response.status_code, response.text[:200])
        small = tmp_path / "small.png"
        small.write_bytes(os.urandom(100 * 1024))
        with small.open("rb") as fh:
            assert (
                http.post(f"{base}/gradio_api/upload", files={"files": (small.name, fh, "image/png")}).status_code
                == 200
            )
    finally:
        app_server.max_file_size = saved


def test_no_extra_paths_are_exposed(app_server) -> None:
    """The app serves only Gradio's own upload/cache folders: nothing added with allowed_paths."""
    assert list(app_server.allowed_paths or []) == []


# --------------------------------------------------------------------------- weights and pickles


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_weights_pickle_with_code_is_refused_without_running(weights_dir: Path, tmp_path: Path) -> None:
    from weights import registry, store

    ckpt = next(c for c in registry.all_checkpoints() if c.sha256 is None)  # no published sha256: the pickle is the only gate
    marker = tmp_path / "code-ran"
    path = store.checkpoint_path(ckpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": _Payload(marker)}, path)
    with pytest.raises(store.WeightsError, match="weights_only=True"):
        store.load_state_dict(ckpt.id, ckpt.components[0].name)
    assert not marker.exists()


def test_weights_with_a_published_hash_are_checked_before_unpickling(weights_dir: Path, tmp_path: Path) -> None:
    from weights import registry, store

    ckpt = next(c for c in registry.all_checkpoints() if c.sha256)
    marker = tmp_path / "code-ran"
    path = store.checkpoint_path(ckpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(store.WeightsError, match="failed its check"):
        store.load_state_dict(ckpt.id, ckpt.components[0].name)
    assert not marker.exists()


def test_modified_fixture_file_is_refused(weights_dir: Path) -> None:
    from weights import registry, store

    ckpt = registry.get("bopbtl/vae_a_quality")  # a small file
    path = store.write_fixture(ckpt, salt="security")
    with path.open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(store.WeightsError, match="modified"):
        store.load_state_dict(ckpt.id, ckpt.components[0].name)


UNSAFE_CALLS = {
    "pickle.load",
    "pickle.loads",
    "dill.load",
    "joblib.load",
    "yaml.load",
    "yaml.unsafe_load",
    "eval",
    "exec",
}


def _calls(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            yield name, node


def test_no_code_path_unpickles_without_weights_only() -> None:
    """Static check over the app's sources: every ``torch.load`` passes ``weights_only=True``;
    no ``pickle``/``yaml.load``/``eval``; ``np.load`` never with ``allow_pickle=True``."""
    problems = []
    for folder in ("pipelines", "demos", "weights"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for name, call in _calls(tree):
                where = f"{path.relative_to(ROOT)}:{call.lineno}"
                keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
                if name == "torch.load" and keywords.get("weights_only") != "True":
                    problems.append(f"{where}: torch.load without weights_only=True")
                if name in ("np.load", "numpy.load") and keywords.get("allow_pickle", "False") != "False":
                    problems.append(f"{where}: np.load with allow_pickle")
                if name in UNSAFE_CALLS:
                    problems.append(f"{where}: {name}")
    for path in (ROOT / "app.py",):
        for name, call in _calls(ast.parse(path.read_text())):
            if name in UNSAFE_CALLS or name == "torch.load":
                problems.append(f"{path.name}:{call.lineno}: {name}")
    assert not problems, "\n".join(problems)
