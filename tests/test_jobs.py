"""The shared job machinery: ownership, tokens, the machine-wide process cap, quotas, wall
time, reaping, restart adoption, and TTL/budget pruning (pipelines.common.jobs, .disk)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.common import disk, jobs
from pipelines.common.errors import InputError


@pytest.fixture()
def public(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOSTALGIA_PUBLIC", "1")
    monkeypatch.setenv("NOSTALGIA_DATA_DIR", str(tmp_path / "data"))


def _sleeper(seconds: float = 30.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"], start_new_session=True)


def _wait(predicate, timeout: float = 10.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_ids_are_unguessable_and_names_short() -> None:
    ids = {jobs.new_job_id("Grandpa Joe") for _ in range(200)}
    assert len(ids) == 200
    sample = next(iter(ids))
    assert sample.startswith("grandpa-joe-") and len(sample.rsplit("-", 1)[1]) == 24 and jobs.valid_job_id(sample)
    assert len(jobs.short_name("x" * 200_000)) == jobs.MAX_NAME_CHARS
    assert jobs.short_name("<script>alert(1)</script>\n") == "scriptalert(1)script"
    assert not jobs.valid_job_id("../etc") and not jobs.valid_job_id("")


def test_ownership_public_and_local(public, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "jobs"
    mine, theirs = root / jobs.new_job_id("a"), root / jobs.new_job_id("b")
    for folder, owner in ((mine, "s:alice"), (theirs, "s:bob")):
        folder.mkdir(parents=True)
        jobs.claim(folder, owner)
    assert "alice" not in (mine / jobs.OWNER_FILE).read_text()  # only a hash is stored
    assert [p.name for p in jobs.owned_folders(root, "s:alice")] == [mine.name]
    assert jobs.require_owner(mine, "s:alice") == mine
    with pytest.raises(InputError) as foreign:
        jobs.require_owner(theirs, "s:alice")
    with pytest.raises(InputError) as missing:
        jobs.require_owner(root / "nope-000", "s:alice")
    assert str(foreign.value).replace(theirs.name, "X") == str(missing.value).replace("nope-000", "X")
    monkeypatch.setenv("NOSTALGIA_PUBLIC", "0")  # one local user: every job is theirs
    assert len(jobs.owned_folders(root, "s:alice")) == 2


def test_public_mode_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.common import limits

    monkeypatch.delenv("NOSTALGIA_PUBLIC", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    try:
        limits.set_served_address("127.0.0.1")
        assert not limits.public_mode()
        limits.set_served_address("0.0.0.0")
        assert limits.public_mode()
        limits.set_served_address("127.0.0.1", share=True)
        assert limits.public_mode()
        limits.set_served_address("localhost")
        monkeypatch.setenv("SPACE_ID", "someone/nostalgia")
        assert limits.public_mode()
        monkeypatch.setenv("NOSTALGIA_PUBLIC", "0")
        assert not limits.public_mode()
    finally:
        limits.set_served_address("127.0.0.1")


def test_slots_cap_queue_quota_cancel_and_reaping(public, tmp_path: Path) -> None:
    slots = jobs.ProcessSlots("test", jobs.JobPolicy(max_running=1, max_queued_per_owner=2), tmp_path / "slots.json",
                              tick_s=0.05)  # fmt: skip
    started: list[str] = []
    assert slots.submit("a1", "alice", _sleeper, on_start=lambda pid: started.append("a1")) == 0
    assert slots.submit("b1", "bob", _sleeper) == 1
    assert slots.submit("a2", "alice", _sleeper) == 2
    assert slots.submit("a3", "alice", _sleeper) == 3
    with pytest.raises(jobs.QuotaError, match="waiting"):
        slots.submit("a4", "alice", _sleeper)  # alice already has 2 waiting
    with pytest.raises(jobs.QuotaError):
        slots.submit("a1", "alice", _sleeper)  # already running
    assert slots.running_count() == 1 and started == ["a1"]
    assert slots.cancel("a3") == "dequeued" and slots.state("a3") is None
    first_pid = slots.pid("a1")
    assert slots.cancel("a1") == "terminating"
    # the next in line starts (bob's, not alice's second) and the stopped child is reaped
    assert _wait(lambda: slots.state("b1") == "running")
    assert slots.running_count() == 1 and slots.state("a2") == "queued"
    assert not Path(f"/proc/{first_pid}").exists() or "Z" not in Path(f"/proc/{first_pid}/stat").read_text().split()[2]
    slots.cancel("b1")
    assert _wait(lambda: slots.state("a2") == "running")
    slots.cancel("a2")
    assert _wait(lambda: slots.running_count() == 0)


def test_slots_one_running_per_owner_in_public_mode(public, tmp_path: Path) -> None:
    slots = jobs.ProcessSlots("test", jobs.JobPolicy(max_running=3, max_queued_per_owner=5), tick_s=0.05)
    for i in range(3):
        slots.submit(f"a{i}", "alice", _sleeper)
    slots.submit("b0", "bob", _sleeper)
    try:
        assert slots.state("a0") == "running" and slots.state("a1") == "queued" and slots.state("b0") == "running"
        assert slots.running_count() == 2
    finally:
        for key in ("a1", "a2", "a0", "b0"):
            slots.cancel(key)
    assert _wait(lambda: slots.running_count() == 0)


def test_wall_time_kills_and_restart_adopts(public, tmp_path: Path) -> None:
    state = tmp_path / "slots.json"
    policy = jobs.JobPolicy(max_running=1, kill_grace_s=0.5)
    slots = jobs.ProcessSlots("test", policy, state, tick_s=0.05)
    slots.submit("slow", "alice", lambda: subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"],
        start_new_session=True), wall_s=0.5)  # fmt: skip
    pid = slots.pid("slow")
    # a new instance (an app restart) counts the process the old one started
    again = jobs.ProcessSlots("test", policy, state, tick_s=0.05)
    assert again.state("slow") == "running" and again.submit("next", "bob", _sleeper) == 1
    # SIGTERM is ignored by that job: SIGKILL follows after the grace period
    assert _wait(lambda: slots.state("slow") is None, timeout=10)
    assert _wait(lambda: again.state("next") == "running", timeout=10)
    again.cancel("next")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


_JOB_PROCESS = """
import sys, time
from pipelines.common.jobs import job_process_main

def run(folder):
    if (folder / "fail").exists():
        raise RuntimeError("the status file says why")
    print("running", flush=True)
    while not (folder / "job" / "stop").exists():
        time.sleep(0.05)

sys.exit(job_process_main(sys.argv[1:], prog="job", description="a job", folder="folder", run=run))
"""


def test_a_job_process_turns_sigterm_into_its_stop_file(tmp_path: Path) -> None:
    import signal

    (tmp_path / "job").mkdir()
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", _JOB_PROCESS, str(tmp_path)]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline().strip() == b"running"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0 and (tmp_path / "job" / "stop").exists()
    process.stdout.close()
    (tmp_path / "fail").touch()
    assert subprocess.run(command, cwd=root, capture_output=True, timeout=60).returncode == 1


def test_prune_by_ttl_and_budget_keeps_active(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    now = time.time()
    for i, (age_h, mb) in enumerate([(100, 1), (5, 2), (4, 2), (3, 2), (1, 2)]):
        folder = root / f"job-{i}"
        folder.mkdir(parents=True)
        (folder / "data.bin").write_bytes(b"\0" * (mb * 1_000_000))
        disk.write_json(folder / jobs.OWNER_FILE, {"owner": "x", "used": now - age_h * 3600})
        for path in (folder, folder / "data.bin", folder / jobs.OWNER_FILE):
            os.utime(path, (now - age_h * 3600, now - age_h * 3600))
    report = jobs.prune_job_folders(root, jobs.JobPolicy(ttl_hours=72, budget_mb=5), active={"job-1"})
    left = sorted(p.name for p in root.iterdir())
    assert left == ["job-1", "job-4"], left  # job-0 too old; job-2, job-3 oldest beyond 5 MB; job-1 running
    assert report.removed == 3


def test_remove_partials(tmp_path: Path) -> None:
    folder = tmp_path / "out" / "abc"
    folder.mkdir(parents=True)
    final = folder / "video.mp4"
    partial = disk.partial_name(final)
    partial.write_bytes(b"half")
    final.with_name("keep.mp4").write_bytes(b"whole")
    assert partial.name.startswith(disk.PARTIAL_PREFIX)
    assert disk.remove_partials(tmp_path / "out") == 1
    assert sorted(p.name for p in folder.iterdir()) == ["keep.mp4"]


def test_json_state_files_are_replaced_whole(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "status.json"
    disk.write_json(path, {"state": "training", "loss": np.float32(0.5), "step": 3})
    disk.write_json(path, {**disk.read_json(path), "step": 4})
    assert disk.read_json(path) == {"state": "training", "loss": 0.5, "step": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no partial file left behind
    path.write_text("[1, 2]")
    assert disk.read_json(path) == {}  # not an object
    path.write_text('{"state": "trai')
    assert disk.read_json(path) == {} and disk.read_json(tmp_path / "missing.json") == {}
    with pytest.raises(OSError):  # a deleted job folder is not re-created by a late write
        disk.write_json(tmp_path / "gone" / "status.json", {"state": "done"})
    assert not (tmp_path / "gone").exists()


def test_result_folders_stay_within_their_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of results: every new result prunes the oldest folders back within the budget."""
    from pipelines.common import media

    monkeypatch.setenv("NOSTALGIA_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("NOSTALGIA_OUTPUT_BUDGET_MB", "1")
    monkeypatch.setenv("NOSTALGIA_PRUNE_EVERY_S", "0")
    examples = tmp_path / "examples-restore"
    examples.mkdir()
    (examples / "kept.png").write_bytes(b"\0" * 2_000_000)  # named folders are not results: kept
    peak = 0
    for i in range(30):  # 30 x 200 kB = 6 times the budget
        media.new_output_path(".bin").write_bytes(bytes([i]) * 200_000)
        results = sum(disk.tree_bytes(p) for p in tmp_path.iterdir() if p != examples)
        peak = max(peak, results)
    assert peak <= 1_000_000 + 200_000  # the budget, plus the result just written
    assert (examples / "kept.png").exists()


def test_clean_outputs_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.common import media

    monkeypatch.setenv("NOSTALGIA_OUTPUT_DIR", str(tmp_path))
    killed = media.new_output_path(".mp4")
    disk.partial_name(killed).write_bytes(b"half a video")
    done = media.new_output_path(".png")
    done.write_bytes(b"png")
    assert media.clean_outputs_at_start() == 2  # the partial file, then its empty folder
    assert not killed.parent.exists() and done.exists()
