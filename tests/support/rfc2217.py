"""An ESP32 dev board's auto-reset circuit behind a real RFC 2217 serial server on loopback.

A pty has no modem-control lines (TIOCMSET on it is ENOTTY), so `stamp verify --reset`
cannot be observed on one. RFC 2217 carries DTR and RTS over TCP: stamp opens
`serial:rfc2217://127.0.0.1:PORT` with pyserial's own client, and this server (pyserial's
own `PortManager`, as in its rfc2217_server example) applies the line changes to a port
on the simulated board's pty whose DTR/RTS are recorded instead of ioctl'd. The recorded
lines drive the board's EN and IO0 the way the dev boards' two-transistor circuit does:
EN is low exactly while RTS is asserted and DTR is not; EN rising resets the board.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import serial
import serial.rfc2217

from stamp.sim.serial import SerialBoard

POLL = 0.1
"""Seconds between checks for close() while waiting for a client."""


class _LinePort(serial.Serial):  # type: ignore[misc]
    """The board's pty with modem lines recorded (and acted on) instead of ioctl'd."""

    bridge: AutoResetBridge

    def _update_dtr_state(self) -> None:
        self.bridge.lines_changed(dtr=self._dtr_state, rts=self._rts_state)

    def _update_rts_state(self) -> None:
        self.bridge.lines_changed(dtr=self._dtr_state, rts=self._rts_state)

    # A pty reports no modem status lines; RFC 2217 asks for them.
    @property
    def cts(self) -> bool:
        return False

    @property
    def dsr(self) -> bool:
        return False

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return False


class AutoResetBridge:
    """`board` behind an RFC 2217 server on 127.0.0.1; one client at a time."""

    def __init__(self, board: SerialBoard) -> None:
        self.board = board
        self.lines: list[tuple[bool, bool]] = []
        """(DTR, RTS) after every change the client made, in order."""
        self.resets = 0
        """EN released after being held low (the board was reset)."""
        self._en_low = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(POLL)  # close() does not wake a blocked accept()
        self.port = self._server.getsockname()[1]
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._start(self._accept)

    @property
    def device(self) -> str:
        return f"serial:rfc2217://127.0.0.1:{self.port}"

    def lines_changed(self, *, dtr: bool, rts: bool) -> None:
        self.lines.append((dtr, rts))
        en_low = rts and not dtr
        if self._en_low and not en_low:
            self.resets += 1
            self.board.reset()
        self._en_low = en_low

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self._conns.append(conn)
            port = _LinePort()
            port.bridge = self
            port.port = self.board.path
            port.timeout = 0.05
            port.open()
            manager = serial.rfc2217.PortManager(port, _Writer(conn))
            done = threading.Event()
            sender = threading.Thread(
                target=self._to_client, args=(port, manager, conn, done), daemon=True
            )
            sender.start()
            self._from_client(port, manager, conn)
            done.set()
            sender.join()
            port.close()

    def _to_client(
        self, port: serial.Serial, manager: Any, conn: socket.socket, done: threading.Event
    ) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            while not self._stopping and not done.is_set():
                data = port.read(port.in_waiting or 1)
                if data:
                    conn.sendall(b"".join(manager.escape(data)))

    def _from_client(self, port: serial.Serial, manager: Any, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            while not self._stopping:
                data = conn.recv(1024)
                if not data:
                    return
                port.write(b"".join(manager.filter(data)))

    def close(self) -> None:
        self._stopping = True
        self._server.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> AutoResetBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Writer:
    """The connection object PortManager writes its telnet answers to."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._conn.sendall(data)
