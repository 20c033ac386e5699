"""What every simulated device shares: a loop in a thread that a pipe wakes, and a pty.

`BoardLoop` is the lifecycle (`start()` a thread or `run()` in the foreground, `stop()`
from a signal handler or another thread, `close()` idempotently); `open_pty` makes the
raw, non-blocking pseudo-terminal a serial board talks on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import threading
import tty

from stamp.closing import Closing


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

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._closed = False

    def thread_name(self) -> str:
        raise NotImplementedError

    def run(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Close what the device holds besides the wake pipe (its pty, its socket)."""
        raise NotImplementedError

    def start(self) -> None:
        """Run the device in a background thread (for tests and embedding)."""
        self._thread = threading.Thread(target=self.run, name=self.thread_name(), daemon=True)
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

    def __init__(self) -> None:
        self._master, self.path = open_pty()
        """The pty's device path, e.g. /dev/pts/3."""
        super().__init__()

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
