"""Registry and weights cache: downloads (resume, failover, hash check), loading, fixtures."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from weights import registry, store
from weights.registry import Checkpoint, Component, Source


class _Server:
    """A loopback HTTP server with Range support that can cut the first response short."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_first: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.cut_first:
                    server.cut_first.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def _pickle_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _tiny_payload(nested: bool = True) -> tuple[bytes, dict[str, torch.Tensor]]:
    sd = {k: v.clone() for k, v in torch.nn.Linear(3, 2).state_dict().items()}
    obj = {"net": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "epoch": 3} if nested else sd
    return _pickle_bytes(obj), sd


@pytest.fixture()
def ckpt_factory() -> Iterator:
    made: list[str] = []

    def make(
        sources: tuple[Source, ...], data: bytes | None, path: tuple[str, ...] = ("net",), cid: str = "test/tiny"
    ) -> Checkpoint:
        ckpt = Checkpoint(
            id=cid,
            family="test",
            filename="tiny.pth.tar",
            description="a tiny test network",
            licence="MIT",
            components=(Component("net", "tests.tiny_models:build_linear", path=path),),
            sources=sources,
            sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
            size=len(data) if data is not None else None,
        )
        made.append(cid)
        return registry.register(ckpt)

    yield make
    for cid in made:
        registry.unregister(cid)


def test_download_resumes_after_a_cut_connection(weights_dir: Path, server: _Server, ckpt_factory) -> None:
    data, _ = _tiny_payload()
    data = (
        data + b"\0" * 200_000
    )  # big enough to be cut in the middle (zip-tolerant padding is not needed for torch.load)
    server.files["/tiny"] = data
    server.cut_first.add("/tiny")
    ckpt = ckpt_factory((Source(url=server.url("/tiny")),), data)
    with pytest.raises(store.WeightsMissingError):
        store.download(ckpt)  # first attempt is cut: the partial file stays for resuming
    partial = store.checkpoint_path(ckpt).parent / ".tiny.pth.tar.part"
    assert 0 < partial.stat().st_size < len(data)
    path = store.download(ckpt)
    assert path.read_bytes() == data
    assert server.requests[-1][1] == f"bytes={len(data) // 2}-"  # the second request resumed
    assert store.status(ckpt).state == "verified"


def test_download_fails_over_to_the_next_source(weights_dir: Path, server: _Server, ckpt_factory) -> None:
    data, sd = _tiny_payload()
    server.files["/good"] = data
    ckpt = ckpt_factory((Source(url=server.url("/dead")), Source(url=server.url("/good"))), data)
    path = store.download(ckpt)
    assert path.read_bytes() == data
    assert [p for p, _ in server.requests] == ["/dead", "/good"]
    loaded = store.load_state_dict(ckpt.id)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    assert (path.parent / "tiny.pth.tar.net.safetensors").exists()  # converted at download time


def test_hash_mismatch_is_refused_and_nothing_lands(weights_dir: Path, server: _Server, ckpt_factory) -> None:
    data, _ = _tiny_payload()
    server.files["/evil"] = data[:-1] + bytes([data[-1] ^ 1])
    ckpt = ckpt_factory((Source(url=server.url("/evil")),), data)
    with pytest.raises(store.WeightsMissingError, match="sha256"):
        store.download(ckpt)
    assert not store.checkpoint_path(ckpt).exists()


def test_tampered_cached_file_is_refused_at_load(weights_dir: Path, server: _Server, ckpt_factory) -> None:
    data, _ = _tiny_payload()
    ckpt = ckpt_factory((), data)
    path = store.checkpoint_path(ckpt)
    path.parent.mkdir(parents=True)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(store.WeightsError, match="failed its check"):
        store.load_state_dict(ckpt.id)


def test_offline_error_names_file_urls_and_destination(weights_dir: Path, ckpt_factory) -> None:
    urls = ("http://127.0.0.1:9/nowhere/tiny.pth.tar", "http://127.0.0.1:9/mirror/tiny.pth.tar")
    ckpt = ckpt_factory(tuple(Source(url=u) for u in urls), b"x")
    with pytest.raises(store.WeightsMissingError) as info:
        store.download(ckpt, timeout=2)
    text = str(info.value)
    assert "tiny.pth.tar" in text and all(u in text for u in urls)
    assert str(store.checkpoint_path(ckpt)) in text
    with pytest.raises(store.WeightsMissingError, match="python -m weights download test/tiny"):
        store.load_state_dict(ckpt.id)


def test_archive_member_is_extracted(weights_dir: Path, server: _Server, ckpt_factory) -> None:
    data, sd = _tiny_payload(nested=False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("checkpoints/other.pth", b"unrelated")
        zf.writestr("checkpoints/net/latest_net_G.pth", data)
    server.files["/archive.zip"] = buf.getvalue()
    ckpt = ckpt_factory((Source(url=server.url("/archive.zip"), member="net/latest_net_G.pth"),), data, path=())
    store.download(ckpt)
    loaded = store.load_state_dict(ckpt.id)
    assert torch.equal(loaded["weight"], sd["weight"])


def test_pickles_with_code_are_refused(weights_dir: Path, ckpt_factory) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    ckpt = ckpt_factory((), None)
    path = store.checkpoint_path(ckpt)
    path.parent.mkdir(parents=True)
    torch.save({"net": Evil()}, path)
    with pytest.raises(store.WeightsError, match="weights_only"):
        store.load_state_dict(ckpt.id)


def test_fixture_file_has_published_layout_and_loads_strictly(weights_dir: Path) -> None:
    ckpt = registry.register(
        Checkpoint(
            id="test/tinyfix",
            family="test",
            filename="tiny.pth",
            description="",
            licence="MIT",
            components=(
                Component("gen", "tests.tiny_models:build_tiny", path=("generator",)),
                Component("head", "tests.tiny_models:build_linear", path=("heads", "h")),
            ),
            sha256="0" * 64,
        )
    )
    try:
        path = store.write_fixture(ckpt, salt="t/{component}")
        raw = torch.load(path, weights_only=True)
        assert set(raw) == {"generator", "heads"} and set(raw["heads"]) == {"h"}
        assert store.status(ckpt).state == "fixture"
        assert store.any_fixture_in_use() == ["test/tinyfix"]
        from tests.tiny_models import build_tiny
        from weights.fixture import fixture_like

        net = store.load_into(build_tiny(), ckpt.id, "gen")
        expected = fixture_like(build_tiny(), "t/gen")
        assert all(torch.equal(net.state_dict()[k], expected[k]) for k in expected)
        with pytest.raises(store.WeightsError, match="does not match"):
            store.load_into(torch.nn.Linear(3, 3), ckpt.id, "head")
    finally:
        registry.unregister("test/tinyfix")


def test_absent_optional_component_is_remembered_without_unpickling_again(
    weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = registry.register(
        Checkpoint(
            id="test/optional",
            family="test",
            filename="opt.pth.tar",
            description="",
            licence="MIT",
            components=(
                Component("net", "tests.tiny_models:build_linear", path=("net",)),
                Component("extra", "tests.tiny_models:build_linear", path=("extra",)),
            ),
            optional_components=("extra",),
        )
    )
    try:
        path = store.checkpoint_path(ckpt)
        path.parent.mkdir(parents=True)
        sd = torch.nn.Linear(3, 2).state_dict()
        torch.save({"net": sd, "epoch": 1}, path)
        with pytest.raises(store.WeightsError, match="no 'extra' state dict"):
            store.load_state_dict(ckpt.id, "extra")
        assert torch.equal(store.load_state_dict(ckpt.id, "net")["weight"], sd["weight"])

        def no_unpickling(_: Path) -> None:
            raise AssertionError("the published pickle was read again")

        monkeypatch.setattr(store, "_unpickle", no_unpickling)
        with pytest.raises(store.WeightsError, match="no 'extra' state dict"):
            store.load_state_dict(ckpt.id, "extra")
    finally:
        registry.unregister(ckpt.id)


def _snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime) for p in folder.rglob("*")}


def test_loading_never_writes_to_the_cache(weights_dir: Path, server: _Server, ckpt_factory) -> None:
    """The cache may be read-only (a Space's mounted storage, a shared cache): a fixture and a file
    put in place by hand load in memory; a download is converted when it is downloaded."""
    data, sd = _tiny_payload()
    by_hand = ckpt_factory((), data)
    path = store.checkpoint_path(by_hand)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    fixture = ckpt_factory((), None, cid="test/tinyfixture")
    store.write_fixture(fixture)
    before = _snapshot(weights_dir)
    loaded = store.load_state_dict(by_hand.id)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    assert set(store.load_state_dict(fixture.id)) == set(sd)
    assert _snapshot(weights_dir) == before  # nothing written, nothing converted beside the pickles
    assert not list(weights_dir.rglob("*.safetensors"))


def test_cached_network_builds_through_the_registry_with_builder_arguments(weights_dir: Path) -> None:
    """The registry is the one place a network is built: its builder, called with the component's
    arguments (data), makes the module that the model cache loads and keeps."""
    from pipelines.common.device import MODELS, cached_network

    ckpt = registry.register(
        Checkpoint(
            id="test/args",
            family="test",
            filename="args.pth",
            description="a linear layer whose sizes are builder arguments",
            licence="MIT",
            components=(Component("net", "torch.nn:Linear", (("in_features", 5), ("out_features", 3)), path=()),),
        )
    )
    try:
        store.write_fixture(ckpt, salt="args")
        MODELS.unload()
        net = cached_network("test/args")
        assert isinstance(net, torch.nn.Linear) and tuple(net.weight.shape) == (3, 5)
        assert cached_network("test/args", "net") is net  # one cache entry, however the component is named
        expected = store.load_state_dict("test/args", "net")
        assert torch.equal(net.weight, expected["weight"])
    finally:
        MODELS.unload()
        registry.unregister("test/args")


def test_no_call_site_builds_a_registered_network_itself() -> None:
    """Call sites name the checkpoint and component only; no builders generated into globals()."""
    import inspect
    import re

    from pipelines.common.device import cached_network

    assert list(inspect.signature(cached_network).parameters) == ["checkpoint_id", "component", "device"]
    root = Path(__file__).resolve().parents[1]
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for folder in ("pipelines", "weights", "demos", "bench")
        for path in (root / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"globals\(\)\[.*build", line)
    ]
    assert not offenders, offenders


def test_sizes_are_published_or_estimated_never_unknown() -> None:
    """Every checkpoint shows a size: the published one, or an estimate from its networks, a lower
    bound ("≥") for files that also hold optimizer state (TPSMM)."""
    from weights import registry

    labels = {c.id: registry.size_label(c) for c in registry.all_checkpoints()}
    assert "?" not in labels.values()
    assert labels["deoldify/artistic"] == "255.1 MB"
    assert labels["tpsmm/vox"].startswith("≥") and labels["tpsmm/vox"].endswith("MB est.")
    assert labels["bopbtl/mapping_quality"].startswith("~") and labels["bopbtl/mapping_quality"].endswith("est.")


def test_a_download_must_match_the_hash_prefix_its_name_carries(weights_dir: Path, server: _Server) -> None:
    """torch.hub-style names (``name-<sha256 prefix>.pth``, face-alignment's files) are checked
    against that prefix when no full sha256 is published."""
    data, _ = _tiny_payload(nested=False)
    server.files["/tiny"] = data
    prefix = hashlib.sha256(data).hexdigest()[:10]
    for given, lands in ((prefix, True), ("0" * 10 if not prefix.startswith("0") else "1" * 10, False)):
        ckpt = registry.register(
            Checkpoint(
                id="test/prefixed", family="test", filename=f"tiny-{given}.pth", description="", licence="MIT",
                components=(Component("net", "tests.tiny_models:build_linear"),),
                sources=(Source(url=server.url("/tiny")),), sha256_prefix=given,
            )
        )
        try:
            if lands:
                assert store.download(ckpt).read_bytes() == data
                assert store.verify(ckpt).state == "present"
            else:
                with pytest.raises(store.WeightsMissingError, match="prefix in the file name"):
                    store.download(ckpt)
                assert not store.checkpoint_path(ckpt).exists()
        finally:
            registry.unregister(ckpt.id)


def test_folder_download_checks_each_file_like_a_checkpoint(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from weights.registry import RepoFile

    published = {"config.json": b'{"layers": 2}', "unet/model.bin": b"weights" * 10}
    served = dict(published)

    def fetch(url: str, partial: Path, progress: object, timeout: float) -> None:
        partial.write_bytes(served[url.split("/resolve/v1/", 1)[1]])

    monkeypatch.setattr(store, "_fetch_url", fetch)
    files = tuple(RepoFile(p, len(b), hashlib.sha256(b).hexdigest()) for p, b in published.items())
    ckpt = Checkpoint(id="test/folder", family="test", filename="config.json", description="a folder model",
                      licence="MIT", components=(), sources=(Source(hf_repo="t/folder", revision="v1"),), files=files)  # fmt: skip
    served["unet/model.bin"] = b"weightz" * 10  # the published size, another hash
    with pytest.raises(store.WeightsMissingError, match="sha256"):
        store.download(ckpt)
    folder = store.checkpoint_dir(ckpt)
    assert not (folder / "config.json").exists()  # the marker file comes last, so never on a failure
    assert not [p for p in folder.rglob("*") if p.is_file()]  # the bad file is not kept, not even partly
    served["unet/model.bin"] = published["unet/model.bin"]
    assert store.download(ckpt) == store.checkpoint_path(ckpt)
    for path, data in published.items():
        assert (folder / path).read_bytes() == data
        assert (folder / f"{path}.sha256").read_text().strip() == hashlib.sha256(data).hexdigest()
