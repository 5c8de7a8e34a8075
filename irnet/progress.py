"""A one-line progress bar per epoch: steps, running loss, throughput. On a terminal it redraws
in place; in a log (not a terminal) it writes a line at every tenth of an epoch of 20 steps or
more."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, title: str, total: int, stream: TextIO | None = None):
        self.title, self.total = title, max(total, 1)
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.start = time.perf_counter()
        self.done = 0
        self.examples = 0
        self.last_tenth = -1

    def update(self, examples: int, loss: float) -> None:
        self.done += 1
        self.examples += examples
        tenth = self.done * 10 // self.total
        if self.live:
            self.stream.write("\r" + self.line(loss))
            self.stream.flush()
        elif tenth != self.last_tenth and tenth > 0 and self.total >= 20:
            self.stream.write(self.line(loss) + "\n")
        self.last_tenth = tenth

    def line(self, loss: float) -> str:
        width = 24
        filled = width * self.done // self.total
        rate = self.examples / max(time.perf_counter() - self.start, 1e-9)
        bar = "#" * filled + "." * (width - filled)
        return f"{self.title} [{bar}] {self.done}/{self.total} loss {loss:.4f} {rate:,.0f} ex/s"

    def close(self) -> float:
        """End the bar's line; the seconds it ran."""
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
        return time.perf_counter() - self.start
