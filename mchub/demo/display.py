"""The demo's terminal display: a calm block of bilingual lines, redrawn in place.

On a terminal the block is rewritten every refresh (no scrolling); events such as "hub-B
is offline" are printed above it once. When the output is a file or a pipe (CI, ``tee``),
or with ``--plain``, a one-line progress report is printed every ``plain_every`` seconds.
"""

from __future__ import annotations

import shutil
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from typing import TextIO


def clock(seconds: float) -> str:
    """``m:ss``."""
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


def width_of(text: str) -> int:
    """Terminal columns of ``text`` (Chinese characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns."""
    return text + " " * max(0, width - width_of(text))


def fit(line: str, width: int) -> str:
    """``line`` cut to ``width`` terminal columns (Chinese characters take two)."""
    used = 0
    for i, ch in enumerate(line):
        used += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used > width:
            return line[:i]
    return line


@dataclass
class Display:
    """Writes events and the progress block to ``out``."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    plain: bool = False
    plain_every: float = 5.0
    _drawn: int = 0
    _last_plain: float = 0.0

    def __post_init__(self) -> None:
        self.plain = self.plain or not self.out.isatty()

    def event(self, text: str) -> None:
        """One line above the block (kept in the scroll-back)."""
        self._erase()
        self.out.write(f"{time.strftime('%H:%M:%S')}  {text}\n")
        self.out.flush()
        self._drawn = 0

    def block(self, lines: list[str], summary: str) -> None:
        """Redraw the progress block (terminal) or print ``summary`` now and then (plain)."""
        if self.plain:
            now = time.monotonic()
            if now - self._last_plain >= self.plain_every:
                self._last_plain = now
                self.out.write(f"{time.strftime('%H:%M:%S')}  {summary}\n")
                self.out.flush()
            return
        self._erase()
        width = shutil.get_terminal_size((120, 24)).columns - 1
        self.out.write("".join(f"{fit(line, width)}\x1b[K\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    def _erase(self) -> None:
        if self._drawn and not self.plain:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
        self._drawn = 0

    def text(self, text: str) -> None:
        """Plain text (headers, URLs, the summary), below any block."""
        self._erase()
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()
