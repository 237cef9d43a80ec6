"""Pseudo-terminal pairs: real serial bytes without hardware.

The driver under test opens ``device`` with pyserial as if it were /dev/ttyUSB0; the
simulator reads and writes ``master`` (a raw file descriptor).
"""

from __future__ import annotations

import contextlib
import os
import pty
import tty
from dataclasses import dataclass


@dataclass
class PtyPair:
    """An open pseudo-terminal: ``master`` fd for the simulator, ``device`` path for the driver."""

    master: int
    slave: int
    device: str

    @classmethod
    def open(cls) -> PtyPair:
        """Open a raw (no echo, no line editing) pair."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        return cls(master, slave, os.ttyname(slave))

    def close(self) -> None:
        """Close both ends (ignores ends already closed)."""
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
