"""The HTTP face of the simulated Particle Cloud (SPEC section 8), served by aiohttp.web.

Why aiohttp.web: one well-kept package that brings a complete HTTP/1.1 server (chunked
request bodies, as particle-api-js streams a firmware file; keep-alive), a multipart
parser, streaming responses written chunk by chunk (the byte-exact SSE frames), and
direct access to the transport (a network drop is an aborted socket, not a clean end).
It runs every connection on one event loop, so 1,000 open event streams cost 1,000
small tasks rather than 1,000 threads. Starlette + uvicorn would need three packages
(and python-multipart) for the same, and ASGI has no way to cut a connection mid-stream.
It is an optional dependency: `pip install 'stamp-firmware[sim]'`.

`CloudServer` serves a `CloudSim` from a background thread running that loop; `close()`
ends every stream, stops the server, joins the thread and closes every socket.
`serve_until_signalled` is `stamp sim cloud`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
from typing import TextIO

from stamp.closing import Closing
from stamp.errors import StampError
from stamp.sim import require_sim_extra
from stamp.sim.cloud import CloudSim, device_summary

require_sim_extra()

from aiohttp import web  # noqa: E402  (after the check that says what to install)

from stamp.sim.cloud_admin import SIM_KEY, Admin, make_guard, stamp_date  # noqa: E402
from stamp.sim.cloud_product_routes import ProductApi  # noqa: E402
from stamp.sim.cloud_routes import MAX_UPLOAD, CloudApi  # noqa: E402

__all__ = ["CloudServer", "serve_until_signalled"]

log = logging.getLogger("stamp.sim.cloud")

DEFAULT_KEEPALIVE = 9.0
"""Seconds of silence before a `:` comment keeps a stream alive (the real cloud: ~9 s;
particle-api-js gives up on a stream silent for 15 s)."""
SHUTDOWN_GRACE = 2.0
"""Seconds open handlers get to finish when the server stops."""
IDLE_CONNECTION = 60.0
"""An idle keep-alive connection is closed after this."""


def build_app(sim: CloudSim, keepalive: float) -> web.Application:
    """The aiohttp application of one simulated cloud."""
    app = web.Application(middlewares=[make_guard(sim)], client_max_size=MAX_UPLOAD + 64 * 1024)
    app[SIM_KEY] = sim
    app.on_response_prepare.append(stamp_date)
    app.add_routes(Admin(sim).routes())
    app.add_routes(CloudApi(sim, keepalive).routes())
    app.add_routes(ProductApi(sim).routes())
    return app


class CloudServer(Closing):
    """The simulated cloud on a loopback port, served from a background thread."""

    def __init__(
        self,
        sim: CloudSim,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        keepalive: float = DEFAULT_KEEPALIVE,
    ) -> None:
        self.sim = sim
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(
            build_app(sim, keepalive),
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,  # a client that leaves ends its stream's task
            shutdown_timeout=SHUTDOWN_GRACE,
            keepalive_timeout=IDLE_CONNECTION,
        )
        try:
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, host, port, reuse_address=True)
            self._loop.run_until_complete(site.start())
        except BaseException:
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()
            raise
        address = self._runner.addresses[0]
        self._host, self._port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def api_url(self) -> str:
        """e.g. http://127.0.0.1:41234 (what PARTICLE_API_URL should be)."""
        shown = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{shown}:{self.port}"

    def start(self) -> CloudServer:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="sim-cloud-http", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """End every stream, stop serving, join the thread, close every socket."""
        if self._closed:
            return
        self._closed = True
        self.sim.close()  # streams end cleanly and their handlers return
        if self._thread is not None:
            done = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            done.result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        else:
            self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        await self._loop.shutdown_default_executor()

    def __enter__(self) -> CloudServer:
        return self.start()

    def __repr__(self) -> str:
        return f"CloudServer({self.api_url})"


def serve_until_signalled(
    sim: CloudSim,
    host: str,
    port: int,
    *,
    keepalive: float = DEFAULT_KEEPALIVE,
    out: TextIO | None = None,
) -> None:
    """Serve `sim` until SIGTERM (returns) or Ctrl-C (KeyboardInterrupt), then shut down.

    The first line written to `out` (stdout) is the JSON object scripts read: api_url,
    token, devices (and products, when there are any). From then on SIGTERM only asks
    for the shutdown, also while it runs and after it: a second SIGTERM (a supervisor
    repeating itself) must not turn a clean exit into death by signal.
    """
    try:
        server = CloudServer(sim, host, port, keepalive=keepalive)
    except OSError as exc:
        sim.close()
        raise StampError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    with server:
        stream = out or sys.stdout
        hello: dict[str, object] = {
            "api_url": server.api_url,
            "token": sim.token,
            "devices": device_summary(sim.devices),
        }
        if sim.products:
            hello["products"] = [{"id": p.id, "slug": p.name} for p in sim.products]
        stream.write(json.dumps(hello) + "\n")
        stream.flush()
        log.info("simulated Particle Cloud at %s", server.api_url)
        while not stop.wait(0.5):
            pass
