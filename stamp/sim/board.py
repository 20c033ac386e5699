"""What every simulated device shares: a loop in a thread that a pipe wakes, and a pty.

`BoardLoop` is the lifecycle (`start()` a thread or `run()` in the foreground, `stop()`
from a signal handler or another thread, `close()` idempotently) and the `--device` URL;
`PtyBoard` adds the raw, non-blocking pseudo-terminal (`open_pty`) a serial board talks
on, and writing to it the way a UART does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import threading
import tty
from typing import ClassVar

from stamp.closing import Closing

log = logging.getLogger("stamp.sim.board")

STALL_WAIT = 0.005
"""Seconds a write to a client that does not read waits before it tries again."""


def open_pty() -> tuple[int, str]:
    """A raw, non-blocking pseudo-terminal: (master fd, the slave's device path).

    Only clients hold the slave side: then the master shows POLLHUP exactly while nobody
    has the port open, which is how a board knows to stay silent (`pty_connected`).
    """
    master, slave = os.openpty()
    try:
        tty.setraw(slave)  # no echo of what the client sends, no newline translation
        path = os.ttyname(slave)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    flags = fcntl.fcntl(master, fcntl.F_GETFL)
    fcntl.fcntl(master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    return master, path


def pty_connected(master: int) -> bool:
    """Someone has the pty's slave side open right now."""
    poller = select.poll()
    poller.register(master, select.POLLIN)
    return not any(ev & select.POLLHUP for _, ev in poller.poll(0))


class BoardLoop(Closing):
    """A simulated device's loop: `run()` until `stop()`, woken through `_wake_r`."""

    SCHEME: ClassVar[str]
    """How its `--device` URL starts: "serial", "smp:serial", "smp:udp"."""

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def address(self) -> str:
        """Where clients reach it: a pty's path, a host:port."""
        raise NotImplementedError

    @property
    def device(self) -> str:
        """The `--device` URL for stamp, e.g. "serial:/dev/pts/3", "smp:udp:127.0.0.1:1337"."""
        return f"{self.SCHEME}:{self.address}"

    def run(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Close what the device holds besides the wake pipe (its pty, its socket)."""
        raise NotImplementedError

    def start(self) -> None:
        """Run the device in a background thread (for tests and embedding)."""
        self._thread = threading.Thread(target=self.run, name=f"sim {self.device}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Make `run()` return soon; safe from a signal handler or another thread."""
        self._stopping = True  # a plain flag: setting it is safe inside a signal handler
        self._wake(b"x")

    def _wake(self, why: bytes) -> None:
        # OSError: closed already, or the pipe is full of wake-ups; run() sees the flag.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, why)

    def _wait(self, fds: list[int], timeout: float) -> list[int]:
        """The fds of `fds` ready to read within `timeout` s; a wake-up is consumed."""
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        events = poller.poll(timeout * 1000.0)
        if any(fd == self._wake_r for fd, _ in events):
            os.read(self._wake_r, 64)
        return [fd for fd, ev in events if ev & select.POLLIN]

    def close(self) -> None:
        """Stop the device and release what it holds; idempotent."""
        self.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self._closed:
            self._closed = True
            self._release()
            os.close(self._wake_r)
            os.close(self._wake_w)


class PtyBoard(BoardLoop):
    """A BoardLoop that talks on its own pseudo-terminal (`path`)."""

    MAX_STALLS: ClassVar[int] = 0
    """Times a write to a client that does not read waits `STALL_WAIT` before the rest is
    dropped (0: dropped at once, never blocking the board)."""

    def __init__(self) -> None:
        self._master, self.path = open_pty()
        """The pty's device path, e.g. /dev/pts/3."""
        super().__init__()

    @property
    def address(self) -> str:
        return self.path

    @property
    def connected(self) -> bool:
        """Someone has the port open right now."""
        return not self._closed and pty_connected(self._master)

    def _release(self) -> None:
        os.close(self._master)

    def _read(self) -> bytes:
        """What the client wrote, b"" when nothing (or it closed between poll and read)."""
        try:
            return os.read(self._master, 65536)
        except OSError as exc:  # EIO: the client closed the port
            if exc.errno not in (errno.EIO, errno.EAGAIN):
                raise
            return b""

    def _send(self, data: bytes) -> None:
        """Write to whoever has the port open; what nobody reads is lost, as on a UART."""
        if not self.connected:
            log.debug("nobody listens on %s: %d bytes lost", self.path, len(data))
            return
        view = memoryview(data)
        stalls = 0
        while view:
            try:
                written = os.write(self._master, view)
            except OSError as exc:
                # EAGAIN: the client stopped reading and its buffer is full; wait a little
                # (if the board may), then drop the rest. EIO: it closed the port.
                if exc.errno == errno.EAGAIN and stalls < self.MAX_STALLS:
                    stalls += 1
                    self._wait([], STALL_WAIT)
                    continue
                if exc.errno not in (errno.EAGAIN, errno.EIO):
                    raise
                log.debug("%s: %d bytes lost (%s)", self.path, len(view), exc.strerror)
                return
            view = view[written:]
