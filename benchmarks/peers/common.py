"""Shared bits of the peer scripts (run with the peers' interpreter, not nnctl's)."""

import json
import time
from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def emit(result: dict) -> None:
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print("RESULT " + json.dumps(result), flush=True)


class Window:
    """Count items over a wall-clock window that starts after `warmup` calls."""

    def __init__(self, warmup: int, seconds: float):
        self.warmup, self.seconds = warmup, seconds
        self.calls, self.items, self.t0, self.elapsed = 0, 0, None, 0.0

    def tick(self, items: int) -> bool:
        """Record one step of `items`; True when the window is over."""
        self.calls += 1
        now = time.perf_counter()
        if self.t0 is None:
            if self.calls >= self.warmup:
                self.t0 = now
            return False
        self.items += items
        self.elapsed = now - self.t0
        return self.elapsed >= self.seconds

    @property
    def rate(self) -> float:
        return self.items / self.elapsed if self.elapsed else float("nan")
