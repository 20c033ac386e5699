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

from stamp.sim.board import BoardLoop
from stamp.sim.smp_server import ServesSmp, SmpServer

IDLE_POLL = 0.05
MAX_DATAGRAM = 65535


class SmpUdpBoard(ServesSmp, BoardLoop):
    """The simulated device on a UDP port; `run()` it or `start()` a thread."""

    SCHEME = "smp:udp"

    def __init__(self, server: SmpServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self.host, self.port = self._sock.getsockname()[:2]
        super().__init__()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _release(self) -> None:
        self._sock.close()

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
