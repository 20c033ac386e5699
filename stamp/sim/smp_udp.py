"""A simulated MCUboot/Zephyr device speaking SMP over UDP on loopback: `stamp sim smp --udp`.

Zephyr's UDP transport (CONFIG_MCUMGR_TRANSPORT_UDP, port 1337 by default) carries one
SMP frame per datagram, unframed; each goes to `stamp.sim.smp_server.SmpServer` and its
answer back to the sender. A device in reset drops what it is sent, as a rebooting
board's network stack does.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading

from stamp.closing import Closing
from stamp.sim.smp_server import SmpServer
from stamp.sim.smp_slots import Slots

IDLE_POLL = 0.05
MAX_DATAGRAM = 65535


class SmpUdpBoard(Closing):
    """The simulated device on a UDP port; `run()` it or `start()` a thread."""

    def __init__(self, server: SmpServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self.host, self.port = self._sock.getsockname()[:2]
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def device(self) -> str:
        """The `--device` URL for stamp, e.g. "smp:udp:127.0.0.1:1337"."""
        return f"smp:udp:{self.host}:{self.port}"

    @property
    def slots(self) -> Slots:
        return self.server.slots

    def reset(self) -> None:
        self.server.reset()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"sim smp udp {self.port}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Make `run()` return soon; safe from a signal handler or another thread."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self._closed:
            self._closed = True
            self._sock.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def run(self) -> None:
        """Answer datagrams until `stop()`."""
        while not self._stopping:
            self.server.poll()
            ready, _, _ = select.select([self._sock.fileno(), self._wake_r], [], [], IDLE_POLL)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if self._sock.fileno() not in ready:
                continue
            try:
                frame, sender = self._sock.recvfrom(MAX_DATAGRAM)
            except OSError:
                continue  # ICMP port unreachable from an earlier answer: the client left
            response = self.server.answer(frame)
            if response is not None:
                with contextlib.suppress(OSError):
                    self._sock.sendto(response, sender)
