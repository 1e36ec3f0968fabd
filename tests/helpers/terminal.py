"""Helpers for tests at a real terminal (no tests here): `bulkgroups` with a pseudo-terminal as its
stdin, stdout and stderr, and `Screen`, the little of a terminal that rich's live display uses
(carriage return, line feed, cursor up, erase line), to see what a person is left looking at."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


class Terminal:
    """`bulkgroups ARGS...` at a pseudo-terminal (stdin, stdout and stderr)."""

    def __init__(self, args: Sequence[str | Path], cwd: Path) -> None:
        controller, terminal = pty.openpty()
        self.controller = controller
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNIPILE_")}
        env["PYTHONPATH"] = str(ROOT)
        env.pop("COLUMNS", None)
        env.pop("NO_COLOR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bulkgroups", *map(str, args)],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            cwd=cwd,
            env=env,
            close_fds=True,
        )
        os.close(terminal)
        self.seen = b""

    def wait_for(self, text: bytes, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never saw {text!r}; saw {self.seen[-500:]!r}"
            if not self._read(remaining):
                assert text in self.seen, f"never saw {text!r}; saw {self.seen[-500:]!r}"

    def type(self, text: bytes) -> None:
        os.write(self.controller, text)

    def finish(self, seconds: float = 60.0) -> int:
        """Read everything until the process ends; its exit code."""
        deadline = time.monotonic() + seconds
        try:
            while self._read(max(deadline - time.monotonic(), 0.01)):
                assert time.monotonic() < deadline, "the command did not finish"
            return self.process.wait(timeout=max(deadline - time.monotonic(), 1.0))
        finally:
            os.close(self.controller)

    def _read(self, seconds: float) -> bool:
        """Read what is there within `seconds`; False once the terminal is closed."""
        ready, _, _ = select.select([self.controller], [], [], seconds)
        if not ready:
            return self.process.poll() is None
        try:
            data = os.read(self.controller, 65536)
        except OSError:  # the process closed the terminal
            return False
        self.seen += data
        return bool(data)

    def text(self) -> str:
        """Everything written, without escape sequences (each frame of the bars included)."""
        return _CSI.sub("", self.seen.decode(errors="replace"))


class Screen:
    """What a terminal shows after these bytes: lines of text, the cursor moved as told."""

    def __init__(self, data: bytes) -> None:
        self.lines: list[list[str]] = [[]]
        self.row = self.column = 0
        text = data.decode(errors="replace")
        position = 0
        while position < len(text):
            escape = _CSI.match(text, position)
            if escape is not None:
                self._control(escape.group(1), escape.group(2))
                position = escape.end()
                continue
            self._put(text[position])
            position += 1

    def _line(self) -> list[str]:
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def _put(self, char: str) -> None:
        if char == "\r":
            self.column = 0
        elif char == "\n":
            self.row += 1
            self._line()
        elif char == "\b":
            self.column = max(self.column - 1, 0)
        elif char >= " ":
            line = self._line()
            while len(line) <= self.column:
                line.append(" ")
            line[self.column] = char
            self.column += 1

    def _control(self, parameters: str, command: str) -> None:
        count = int(parameters) if parameters.isdigit() else 1
        if command == "A":
            self.row = max(self.row - count, 0)
        elif command == "B":
            self.row += count
        elif command == "K":
            line = self._line()
            if parameters in ("2",):
                line.clear()
            elif parameters in ("", "0"):
                del line[self.column :]
        # colours (m), the cursor's visibility (?25l/h) and the rest change no text

    def text(self) -> list[str]:
        return ["".join(line).rstrip() for line in self.lines]
