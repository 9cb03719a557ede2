"""Background jobs shared by many visitors: who owns them, how many run, how long, how long kept.

Generic (no UI, no model): the Dance trainer and the Time Machine trainer use it the same way.

**Ownership.** A job lives in a folder whose name is unguessable (:func:`new_job_id`); its
``owner.json`` records a hash of the owner token (never the token itself). In public mode
(:func:`pipelines.common.limits.public_mode`) :func:`owns` is true only for the owner, and
:func:`require_owner` answers an unknown and a foreign job with the same message, so a visitor
cannot even learn that another's job exists. Locally (one user) every job is everyone's.

**Quotas.** :class:`ProcessSlots` starts background processes through a queue: at most
``max_running`` on the machine, ``max_running_per_owner`` per owner, ``max_queued_per_owner``
waiting per owner (beyond that :class:`QuotaError`), each killed past its wall-time limit
(SIGTERM to its process group, SIGKILL after a grace period) and reaped when it ends. Its state
is kept in a JSON file, so after an app restart the processes that still run are counted.

**Retention.** :func:`prune_job_folders` removes job folders idle longer than a TTL, then the
oldest ones beyond a disk budget, never a running or queued one.

Use::

    SLOTS = training_slots()                  # the machine-wide cap, shared by every trainer
    job_id = new_job_id("grandpa")
    folder = root / job_id; folder.mkdir(); claim(folder, owner)
    position = SLOTS.submit(f"dance/{job_id}", owner, lambda: subprocess.Popen([...], start_new_session=True),
                            wall_s=3600)           # 0: started; n: n-th in the queue
    SLOTS.state(f"dance/{job_id}")   # "running" | "queued" | None
    SLOTS.dequeue(f"dance/{job_id}") # True if it was waiting (then it never starts)
    SLOTS.cancel(f"dance/{job_id}")  # dequeue, or SIGTERM the running process
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.common import disk
from pipelines.common.errors import InputError
from pipelines.common.limits import _env_float, public_mode

log = logging.getLogger("nostalgia.jobs")

OWNER_FILE = "owner.json"
MAX_NAME_CHARS = 40


class QuotaError(InputError):
    """A visitor asked for more jobs than the machine or their share allows; says what to do."""


# --------------------------------------------------------------------------- policy


def _default_max_running() -> int:
    try:
        import torch

        return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1
    except ImportError:
        return 1


@dataclass(frozen=True)
class JobPolicy:
    """Limits for one kind of background job; every field has an environment variable."""

    max_running: int = field(default_factory=_default_max_running)  # NOSTALGIA_MAX_TRAINING_PROCESSES
    max_running_per_owner: int = 1  # NOSTALGIA_MAX_RUNNING_PER_SESSION (public mode)
    max_queued_per_owner: int = 2  # NOSTALGIA_MAX_QUEUED_PER_SESSION (public mode)
    max_wall_minutes: float = 240.0  # NOSTALGIA_MAX_JOB_MINUTES: killed past this
    kill_grace_s: float = 60.0  # SIGTERM -> SIGKILL
    ttl_hours: float = 72.0  # NOSTALGIA_JOB_TTL_HOURS: idle job folders removed
    budget_mb: float = 4096.0  # NOSTALGIA_JOB_BUDGET_MB: all job folders of one kind together

    @classmethod
    def from_env(cls) -> JobPolicy:
        base = cls()
        return cls(
            max_running=int(_env_float("NOSTALGIA_MAX_TRAINING_PROCESSES", base.max_running)),
            max_running_per_owner=int(_env_float("NOSTALGIA_MAX_RUNNING_PER_SESSION", base.max_running_per_owner)),
            max_queued_per_owner=int(_env_float("NOSTALGIA_MAX_QUEUED_PER_SESSION", base.max_queued_per_owner)),
            max_wall_minutes=_env_float("NOSTALGIA_MAX_JOB_MINUTES", base.max_wall_minutes),
            kill_grace_s=_env_float("NOSTALGIA_JOB_KILL_GRACE_S", base.kill_grace_s),
            ttl_hours=_env_float("NOSTALGIA_JOB_TTL_HOURS", base.ttl_hours),
            budget_mb=_env_float("NOSTALGIA_JOB_BUDGET_MB", base.budget_mb),
        )


# --------------------------------------------------------------------------- ownership


def short_name(name: str | None, default: str = "target") -> str:
    """A display name: one line, printable, at most ``MAX_NAME_CHARS`` characters."""
    text = re.sub(r"\s+", " ", re.sub(r"[^\w .,'()-]", "", str(name or ""))).strip()
    return text[:MAX_NAME_CHARS].strip() or default


def new_job_id(name: str | None = None) -> str:
    """``<slug>-<96 random bits>``: readable, and impossible to guess or enumerate."""
    slug = re.sub(r"[^a-z0-9]+", "-", short_name(name).lower()).strip("-")[:24] or "job"
    return f"{slug}-{secrets.token_hex(12)}"


def valid_job_id(job_id: str | None) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_-]{1,80}", job_id or ""))


def data_dir() -> Path:
    """Where job folders of every kind live: ``$NOSTALGIA_DATA_DIR`` or ``outputs/`` in the repository."""
    env = os.environ.get("NOSTALGIA_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "outputs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def owner_key(owner: str) -> str:
    """What is stored on disk for an owner token: a hash (a leaked folder reveals no token)."""
    return hashlib.sha256(f"nostalgia-owner:{owner}".encode()).hexdigest()[:32]


def claim(folder: Path, owner: str) -> None:
    """Record ``owner`` as the owner of the job folder (written once, when it is created)."""
    now = time.time()
    disk.write_json(folder / OWNER_FILE, {"owner": owner_key(owner), "created": now, "used": now})


def touch(folder: Path) -> None:
    """Mark a job as used now (its TTL counts from the last use)."""
    data = disk.read_json(folder / OWNER_FILE)
    if data:
        data["used"] = time.time()
        disk.write_json(folder / OWNER_FILE, data)


def owns(folder: Path, owner: str | None) -> bool:
    """Whether ``owner`` may see and act on the job: always locally; in public mode only its owner."""
    if not public_mode():
        return True
    data = disk.read_json(folder / OWNER_FILE)
    return bool(owner) and data.get("owner") == owner_key(str(owner))


def require_owner(folder: Path, owner: str | None, what: str = "job") -> Path:
    """``folder`` if ``owner`` may act on it; else the same error as for a job that does not exist."""
    if not folder.is_dir() or not owns(folder, owner):
        raise InputError(f"Unknown {what} {folder.name!r}; pick one of yours from the list or start a new one.")
    return folder


def owned_folders(root: Path, owner: str | None) -> list[Path]:
    """The job folders under ``root`` that ``owner`` may see (all of them locally)."""
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and owns(p, owner)]


def job_last_used(folder: Path) -> float:
    data = disk.read_json(folder / OWNER_FILE)
    return max(float(data.get("used", 0.0)), disk.last_used(folder))


def prune_job_folders(root: Path, policy: JobPolicy, active: Iterable[str] = ()) -> disk.PruneReport:
    """Remove job folders idle for longer than the TTL, then the oldest beyond the disk budget;
    running and queued jobs (``active``) and hidden entries are kept."""
    return disk.prune(
        root,
        max_age_s=policy.ttl_hours * 3600,
        max_bytes=policy.budget_mb * 1e6,
        candidates=lambda p: p.is_dir() and not p.name.startswith("."),
        protect=active,
        age_of=job_last_used,
    )


# --------------------------------------------------------------------------- the process slots


@dataclass
class _Entry:
    key: str
    owner: str
    wall_s: float
    start: Callable[[], subprocess.Popen] | None = None
    on_start: Callable[[int], None] | None = None
    pid: int | None = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    term_sent: float = 0.0


def job_process_main(argv: list[str] | None, *, prog: str, description: str, folder: str,
                     run: Callable[[Path], object]) -> int:  # fmt: skip
    """The entry point of a background training process (``python -m <prog> FOLDER``): log to
    stdout, turn SIGTERM (Stop, or the wall-time limit of :class:`ProcessSlots`) into the
    ``FOLDER/job/stop`` file the trainers poll, so a stopped job ends at its next step and says
    so in its status, and run ``run(FOLDER)``. Exit status 1 when it raises (its status file
    records why), else 0."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(folder, type=Path)
    job_folder = Path(getattr(parser.parse_args(argv), folder))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    signal.signal(signal.SIGTERM, lambda *_: (job_folder / "job" / "stop").touch())
    try:
        run(job_folder)
    except Exception:
        return 1
    return 0


def pid_alive(pid: int | None) -> bool:
    """Alive and not a zombie (a finished child not yet reaped is not running)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class ProcessSlots:
    """A machine-wide cap on one kind of background process, with per-owner quotas (module docs)."""

    def __init__(self, name: str, policy: JobPolicy | None = None, state_file: Path | None = None,
                 tick_s: float = 1.0) -> None:  # fmt: skip
        self.name = name
        self.policy = policy or JobPolicy.from_env()
        self.state_file = state_file
        self.tick_s = tick_s
        self._lock = threading.RLock()
        self._running: dict[str, _Entry] = {}
        self._queue: list[_Entry] = []
        self._thread: threading.Thread | None = None
        self._adopt()

    # ---------------------------------------------------------------- requests

    def submit(
        self,
        key: str,
        owner: str,
        start: Callable[[], subprocess.Popen],
        *,
        wall_s: float | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> int:
        """Queue a process start. Returns 0 when it started now, else its place in the queue.
        ``on_start(pid)`` runs when it starts (now or later). Raises :class:`QuotaError` when
        ``owner`` already has ``max_queued_per_owner`` jobs waiting (public mode) or ``key``
        is already running or queued."""
        policy = self.policy
        wall = min(float(wall_s or policy.max_wall_minutes * 60), policy.max_wall_minutes * 60)
        with self._lock:
            self._reap()
            if key in self._running or any(e.key == key for e in self._queue):
                raise QuotaError(f"{key} is already {'running' if key in self._running else 'waiting to start'}.")
            if public_mode():
                waiting = sum(e.owner == owner for e in self._queue)
                if waiting >= policy.max_queued_per_owner:
                    raise QuotaError(
                        f"You already have {waiting} job(s) waiting to start, the most one visitor may queue; "
                        "stop one or wait for it to start."
                    )
            self._queue.append(_Entry(key, owner, wall, start, on_start))
            self._start_ready()
            self._ensure_thread()
            return 0 if key in self._running else self.position(key) or 0

    def dequeue(self, key: str) -> bool:
        """Remove ``key`` from the queue if it is waiting there (a running job is left alone: ask
        it to stop its own way, e.g. a stop file, so it can save its work first)."""
        with self._lock:
            for i, entry in enumerate(self._queue):
                if entry.key == key:
                    del self._queue[i]
                    return True
            return False

    def cancel(self, key: str) -> str | None:
        """Stop ``key``: a queued job is removed ("dequeued"); a running one gets SIGTERM (the
        job checkpoints and ends; SIGKILL follows after the grace period) ("terminating");
        None when it is neither."""
        with self._lock:
            for i, entry in enumerate(self._queue):
                if entry.key == key:
                    del self._queue[i]
                    return "dequeued"
            entry = self._running.get(key)
            if entry is None:
                return None
            self._signal(entry, signal.SIGTERM)
            entry.term_sent = entry.term_sent or time.time()
            return "terminating"

    def state(self, key: str) -> str | None:
        """ "running", "queued" or None (finished, never submitted, or unknown)."""
        with self._lock:
            self._reap()
            if key in self._running:
                return "running"
            return "queued" if any(e.key == key for e in self._queue) else None

    def position(self, key: str) -> int | None:
        """1-based place in the queue, or None."""
        with self._lock:
            for i, entry in enumerate(self._queue):
                if entry.key == key:
                    return i + 1
            return None

    def pid(self, key: str) -> int | None:
        with self._lock:
            entry = self._running.get(key)
            return entry.pid if entry else None

    def active_keys(self) -> set[str]:
        with self._lock:
            return set(self._running) | {e.key for e in self._queue}

    def running_count(self) -> int:
        with self._lock:
            self._reap()
            return len(self._running)

    def tick(self) -> None:
        """Reap finished processes, enforce wall times, start what may start."""
        with self._lock:
            self._reap()
            now = time.time()
            for entry in list(self._running.values()):
                if not entry.term_sent and now - entry.started > entry.wall_s:
                    log.warning(
                        "%s job %s passed its wall time (%.0f s): stopping it", self.name, entry.key, entry.wall_s
                    )
                    self._signal(entry, signal.SIGTERM)
                    entry.term_sent = now
                elif entry.term_sent and now - entry.term_sent > self.policy.kill_grace_s:
                    self._signal(entry, signal.SIGKILL)
            self._start_ready()

    # ---------------------------------------------------------------- internals

    def _start_ready(self) -> None:
        per_owner = self.policy.max_running_per_owner if public_mode() else self.policy.max_running
        i = 0
        while i < len(self._queue) and len(self._running) < self.policy.max_running:
            entry = self._queue[i]
            if sum(e.owner == entry.owner for e in self._running.values()) >= per_owner:
                i += 1
                continue
            del self._queue[i]
            try:
                entry.proc = entry.start()  # type: ignore[misc]
            except Exception:
                log.exception("%s job %s could not start", self.name, entry.key)
                continue
            entry.pid, entry.started, entry.start = entry.proc.pid, time.time(), None
            self._running[entry.key] = entry
            self._save()
            if entry.on_start:
                try:
                    entry.on_start(entry.pid)
                except Exception:
                    log.exception("%s job %s: on_start failed", self.name, entry.key)

    def _reap(self) -> None:
        ended = []
        for key, entry in self._running.items():
            if entry.proc is not None:
                if entry.proc.poll() is not None:  # poll() reaps the child: no zombie left
                    ended.append(key)
            elif not pid_alive(entry.pid):
                ended.append(key)
        for key in ended:
            del self._running[key]
        if ended:
            self._save()

    @staticmethod
    def _signal(entry: _Entry, sig: int) -> None:
        """Signal the job's process group when it leads one (``start_new_session=True``: its
        children too), else only the process; never the app's own group."""
        if not entry.pid:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(entry.pid) == entry.pid:
                os.killpg(entry.pid, sig)
            else:
                os.kill(entry.pid, sig)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"{self.name}-slots", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.tick_s)
            try:
                self.tick()
            except Exception:
                log.exception("%s slots: tick failed", self.name)
            with self._lock:
                if not self._running and not self._queue:
                    self._thread = None
                    return

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {
            k: {"pid": e.pid, "owner": e.owner, "started": e.started, "wall_s": e.wall_s}
            for k, e in self._running.items()
        }
        try:
            disk.write_json(self.state_file, data)
        except OSError:
            log.warning("%s slots: could not write %s", self.name, self.state_file)

    def _adopt(self) -> None:
        """Count the processes a previous app instance started that still run."""
        if self.state_file is None:
            return
        for key, item in disk.read_json(self.state_file).items():
            if pid_alive(item.get("pid")):
                self._running[key] = _Entry(key, str(item.get("owner", "")), float(item.get("wall_s", 0) or 0) or 1e9,
                                            pid=int(item["pid"]), started=float(item.get("started", time.time())))  # fmt: skip
        self._save()
        if self._running:
            self._ensure_thread()


# --------------------------------------------------------------------------- the machine-wide training cap

_TRAINING_SLOTS: list[ProcessSlots] = []
_TRAINING_LOCK = threading.Lock()


def training_slots() -> ProcessSlots:
    """The one :class:`ProcessSlots` every kind of training shares (Dance, Time Machine), so the
    machine-wide cap holds across them; keys are ``"<kind>/<job id>"``."""
    with _TRAINING_LOCK:
        if not _TRAINING_SLOTS:
            _TRAINING_SLOTS.append(ProcessSlots("training", state_file=data_dir() / ".training-slots.json"))
        return _TRAINING_SLOTS[0]
