"""Time Machine through the app's API: a visitor's person is invisible to every other visitor."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.face_photos import make_face_photos


@pytest.fixture()
def public_app(app_server, ensure_fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ensure_fixtures(["time_machine/sd15"])
    monkeypatch.setenv("NOSTALGIA_PUBLIC", "1")
    monkeypatch.setenv("NOSTALGIA_DATA_DIR", str(tmp_path / "data"))
    return app_server


def test_two_sessions_cannot_see_each_others_persons(public_app, reference_dir: Path, tmp_path: Path) -> None:
    from pipelines.time_machine import pipeline as tm

    photos = make_face_photos(reference_dir, tmp_path / "photos", 10)
    alice, bob = Client(public_app.local_url, verbose=False), Client(public_app.local_url, verbose=False)
    person, summary, _, _ = alice.predict(
        [handle_file(str(p)) for p in photos], "Ada", True, "test", 1, None, False, api_name="/time_machine_train"
    )
    assert "Ada" in summary
    assert "Stop" in alice.predict(person, api_name="/time_machine_stop") or "Nothing" in summary
    for endpoint, args in (
        ("/time_machine_status", (person,)),
        ("/time_machine_stop", (person,)),
        ("/time_machine_generate", (person, ["roman"], 1, 0)),
        ("/time_machine_delete", (person,)),
        ("/time_machine_train", (None, "", False, "test", 1, person, True)),
    ):
        with pytest.raises(Exception, match="Unknown person"):
            bob.predict(*args, api_name=endpoint)
    assert (tm.persons_dir() / person / "person.json").exists()  # untouched by bob
    deadline = time.monotonic() + 120
    while tm.person_status_at(tm.persons_dir() / person).get("running"):
        assert time.monotonic() < deadline
        time.sleep(1)
    message, _ = alice.predict(person, api_name="/time_machine_delete")
    assert "deleted" in message
    assert not (tm.persons_dir() / person).exists()
