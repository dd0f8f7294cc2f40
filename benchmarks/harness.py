"""Timing and memory: the measuring half of the benchmarks, with no model in it.

Times are taken in one process, the implementations interleaved repeat by
repeat (ours, reference, reference, ours, ...), so that a machine that speeds
up or slows down during the run (a shared CPU, a GPU warming up) moves every
implementation alike and the ratio stays fair. Each figure keeps its median
and its range over the repeats.

Peak memory on a GPU is what the CUDA allocator reports. On a CPU there is no
such counter, so the figure is the growth of the peak resident set of a fresh
process while it takes two training steps (``ru_maxrss`` after the steps
minus before them, with the peak reset after the model was built):
activations, gradients and optimiser state.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]  # where `-m benchmarks` is found


@dataclass
class Timing:
    """Seconds per call over the timed repeats."""

    seconds: list[float] = field(default_factory=list)

    def milliseconds(self) -> dict:
        """Median, min and max of the time per call, in milliseconds."""
        return _spread([1000 * s for s in self.seconds])

    def rate(self, count: float) -> dict:
        """Median, min and max of ``count`` per second (images, tokens)."""
        return _spread([count / s for s in self.seconds])


def _spread(values: list[float]) -> dict:
    return {
        "values": values,  # in the order taken: round i of each side pairs up
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "repeats": len(values),
    }


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    calls: dict[str, Callable[[], object]],
    repeats: int,
    device: torch.device,
    warmup: int = 1,
) -> dict[str, Timing]:
    """Time each call ``repeats`` times, alternating the order every round."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        for call in calls.values():
            call()
    timings = {name: Timing() for name in calls}
    names = list(calls)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            synchronise(device)
            start = time.perf_counter()
            calls[name]()
            synchronise(device)
            timings[name].seconds.append(time.perf_counter() - start)
    return timings


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> float:
    """Hand freed memory back to the system, reset the peak resident set
    (Linux: ``clear_refs`` 5) and return the resident set now, in MiB: what
    was built before (and its transient peaks) no longer counts."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident set since :func:`reset_peak_rss`, in MiB."""
    return _status_mb("VmHWM")


def cpu_memory_of(
    case: str, implementation: str, options: dict, size=None
) -> float | None:
    """Run ``python -m benchmarks.memory`` in a fresh process and return the
    MiB its training steps added to the peak resident set (None if it failed)."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        case,
        implementation,
        json.dumps(options),
        json.dumps(size),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["added_mb"]


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    info = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Row:
    """One implementation in one comparison."""

    implementation: str
    figure: dict | None  # Timing.summary(), None when it did not run
    parameters: int | None = None
    memory_mb: float | None = None
    note: str = ""


@dataclass
class Comparison:
    """Ours against the references on one configuration."""

    key: str
    title: str
    configuration: str
    unit: str  # what figure[...] is, e.g. "images/s" or "ms per batch"
    higher_is_better: bool
    rows: list[Row]
    checks: list[str] = field(default_factory=list)  # correctness, as sentences
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)
