"""Time any callable on CPU or GPU and write the results as a markdown table.

    from bench.harness import Bench
    bench = Bench("colorization")
    bench.time("artistic rf35", "864x1152", lambda: pipe(image), baseline_s=15.86)
    bench.write()   # prints the table and saves bench/results/<name>.md

Timings: one warm-up call, then the median of ``repeats`` calls; CUDA is synchronised around each
call. Peak memory: the process's peak RSS (CPU) or ``torch.cuda.max_memory_allocated`` (GPU).
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


def machine_description() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


@dataclass
class Row:
    name: str
    input: str
    seconds: float
    peak_gib: float
    baseline_s: float | None = None
    note: str = ""

    @property
    def speedup(self) -> str:
        return f"{self.baseline_s / self.seconds:.1f}x" if self.baseline_s else "-"


@dataclass
class Bench:
    title: str
    device: torch.device = field(default_factory=lambda: torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rows: list[Row] = field(default_factory=list)

    def time(
        self,
        name: str,
        input_desc: str,
        fn: Callable[[], object],
        *,
        repeats: int = 3,
        warmup: int = 1,
        baseline_s: float | None = None,
        per: int = 1,
        note: str = "",
    ) -> Row:
        """Median seconds of ``fn()`` divided by ``per`` (e.g. frames per call)."""
        cuda = self.device.type == "cuda"
        for _ in range(warmup):
            fn()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / (1 << 30) if cuda else peak_rss_gib()
        row = Row(name, input_desc, statistics.median(samples) / per, peak, baseline_s, note)
        self.rows.append(row)
        print(
            f"{name:40s} {input_desc:16s} {row.seconds:8.3f} s  peak {peak:5.2f} GiB  vs original {row.speedup}",
            flush=True,
        )
        return row

    def table(self) -> str:
        mem = "peak GPU mem (GiB)" if self.device.type == "cuda" else "peak RSS (GiB)"
        lines = [
            f"### {self.title} — {machine_description()}",
            "",
            f"| what | input | seconds | {mem} | original (s) | speed-up | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            base = f"{r.baseline_s:g}" if r.baseline_s else "-"
            lines.append(
                f"| {r.name} | {r.input} | {r.seconds:.3f} | {r.peak_gib:.2f} | {base} | {r.speedup} | {r.note} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, name: str | None = None) -> Path:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"{name or self.title.lower().replace(' ', '_')}-{self.device.type}.md"
        text = self.table()
        path.write_text(text)
        print("\n" + text)
        return path
