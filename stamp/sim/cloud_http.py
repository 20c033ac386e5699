"""The HTTP face of the simulated Particle Cloud: the API subset of SPEC section 8.

Paths, status codes, JSON shapes and the Server-Sent Events framing follow
api.particle.io closely enough that particle-cli or particle-api-js can talk to it
(`:ok` first on a stream, `event:`/`data:` pairs, comment keep-alives, 401
`invalid_token`, 403 "Permission Denied" for an unknown device, 408 "Timed out." for
an offline one). Paths under `/_sim/` are the simulator's own controls for tests and
demos (drop the streams, reboot a device, publish events), behind the same token.

Standard library only: a ThreadingHTTPServer, one thread per connection; each event
stream thread writes the frames `CloudSim` queued for it, so a slow reader never holds
up another. `close()` ends every stream, unblocks idle keep-alive connections, joins
every thread and closes every socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import select
import signal
import socket
import sys
import threading
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

from stamp.errors import StampError
from stamp.sim.cloud import CloudSim, DeviceSnapshot, device_summary
from stamp.sim.cloud_firmware import SimRefused
from stamp.sim.cloud_streams import StreamEnd, iso8601

log = logging.getLogger("stamp.sim.cloud")

DEFAULT_KEEPALIVE = 9.0
"""Seconds of silence before a `:` comment keeps a stream alive (the real cloud: ~9 s)."""
MAX_UPLOAD = 8 * 1024 * 1024
MAX_JSON_BODY = 64 * 1024
CONNECTION_TIMEOUT = 60.0
"""An idle keep-alive connection, or a stream that cannot be written, is closed after this."""
CLIENT_CHECK = 1.0
"""How often an idle event stream checks whether its client has gone."""
SYSTEM_FIRMWARE = "1.5.2"

_TOKEN_IN_QUERY = re.compile(r"(access_token=)[^&\s]*")


def redact(text: str) -> str:
    """`text` with any access_token query value replaced (for logs)."""
    return _TOKEN_IN_QUERY.sub(r"\1<redacted>", text)


def device_json(device: DeviceSnapshot, *, detail: bool) -> dict[str, Any]:
    """A device as `GET /v1/devices` (or, with detail, `GET /v1/devices/:id`) shows it."""
    heard = iso8601(device.last_heard)
    variables = {"stamp": "string"} if device.online and device.firmware.report else {}
    record: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "last_app": None,
        "last_ip_address": "127.0.0.1",
        "last_heard": heard,
        "last_handshake_at": heard,
        "product_id": device.platform_id,
        "online": device.online,
        "connected": device.online,
        "platform_id": device.platform_id,
        "cellular": False,
        "notes": None,
        "functions": [],
        "variables": variables,
        "status": "normal",
        "serial_number": f"PHHSIM{device.id[-8:].upper()}",
        "system_firmware_version": SYSTEM_FIRMWARE,
        "current_build_target": SYSTEM_FIRMWARE,
        "default_build_target": SYSTEM_FIRMWARE,
    }
    if detail:
        record["firmware_updates_enabled"] = True
        record["firmware_updates_forced"] = False
    return record


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise SimRefused(400, "Expected a multipart/form-data upload with a `file` field")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in (b"\r\n" + body).split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise SimRefused(400, "Malformed multipart body")
        disposition = Message()
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                disposition["content-disposition"] = value.strip()
        name = disposition.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields[name] = (disposition.get_filename(), content)
    return fields


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins every connection thread
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: CloudSim, keepalive: float) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sim = sim
        self.keepalive = keepalive
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def wake_connections(self) -> None:
        """Unblock threads waiting on idle keep-alive connections so they can finish."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stamp-sim-cloud"
    timeout = CONNECTION_TIMEOUT
    server: _Server
    query: dict[str, list[str]]

    # -- plumbing ----------------------------------------------------------------------

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header tells clients the cloud's time (stamp uses it to correct for a
        # skewed local clock), so it comes from the simulated cloud's clock.
        return super().date_time_string(self.server.sim.now() if timestamp is None else timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), redact(format % args))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            if not self.server.sim.check_token(self._token()):
                self._send_json(
                    401,
                    {
                        "error": "invalid_token",
                        "error_description": "The access token provided is invalid.",
                    },
                    extra={"WWW-Authenticate": 'Bearer realm="Particle", error="invalid_token"'},
                )
                return
            retry_after = self.server.sim.take_throttle()
            if retry_after is not None:
                self._send_json(
                    429,
                    {"ok": False, "error": "Too many requests"},
                    extra={"Retry-After": str(retry_after)},
                )
                return
            self._route(method, parts)
        except SimRefused as refused:
            self._send_json(refused.status, refused.body)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        # The real API also takes the token as a query parameter; stamp never sends it so.
        values = self.query.get("access_token")
        return values[0] if values else None

    def _send_json(self, status: int, body: Any, *, extra: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise SimRefused(411, "Length Required")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise SimRefused(400, "Bad Content-Length") from None
        if length > limit:
            self.close_connection = True
            raise SimRefused(413, f"Request body larger than {limit} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self) -> dict[str, Any]:
        raw = self._read_body(MAX_JSON_BODY)
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise SimRefused(400, "Request body is not JSON") from None
        if not isinstance(body, dict):
            raise SimRefused(400, "Request body is not a JSON object")
        return body

    def _not_found(self) -> None:
        self._send_json(404, {"ok": False, "error": "Not Found"})

    # -- the API -----------------------------------------------------------------------

    def _route(self, method: str, parts: list[str]) -> None:
        sim = self.server.sim
        if parts[:1] == ["_sim"]:
            self._admin(method, parts[1:])
            return
        if parts[:1] != ["v1"]:
            self._not_found()
            return
        rest = parts[1:]
        if method == "GET" and rest[:1] == ["events"]:
            self._stream(None, "/".join(rest[1:]))
        elif method == "GET" and rest[:2] == ["devices", "events"]:
            self._stream(None, "/".join(rest[2:]))
        elif method == "GET" and rest == ["devices"]:
            self._send_json(200, [device_json(d, detail=False) for d in sim.devices])
        elif rest[:1] == ["devices"] and len(rest) >= 2:
            device = self._device(rest[1])
            if method == "GET" and len(rest) == 2:
                self._send_json(200, device_json(device, detail=True))
            elif method == "GET" and len(rest) >= 3 and rest[2] == "events":
                self._stream(device.id, "/".join(rest[3:]))
            elif method == "GET" and len(rest) == 3:
                self._variable(device, rest[2])
            elif method == "PUT" and len(rest) == 2:
                self._flash(device)
            else:
                self._not_found()
        else:
            self._not_found()

    def _device(self, id_or_name: str) -> DeviceSnapshot:
        device = self.server.sim.find(id_or_name)
        if device is None:
            raise SimRefused(
                403, "Permission Denied", info="I didn't recognize that device name or ID"
            )
        return device

    def _variable(self, device: DeviceSnapshot, name: str) -> None:
        value = self.server.sim.variable(device.id, name)
        heard = iso8601(device.last_heard)
        self._send_json(
            200,
            {
                "cmd": "VarReturn",
                "name": name,
                "result": value,
                "coreInfo": {
                    "last_app": "",
                    "last_heard": heard,
                    "connected": True,
                    "last_handshake_at": heard,
                    "deviceID": device.id,
                    "product_id": device.platform_id,
                },
            },
        )

    def _flash(self, device: DeviceSnapshot) -> None:
        body = self._read_body(MAX_UPLOAD)
        fields = parse_multipart(body, self.headers.get("Content-Type", ""))
        if "file" not in fields:
            raise SimRefused(400, "Nothing to flash: no `file` field", errors=["No file"])
        self.server.sim.flash(device.id, fields["file"][1])
        self._send_json(200, {"ok": True, "id": device.id, "status": "Update started"})

    def _stream(self, device_id: str | None, prefix: str) -> None:
        """Server-Sent Events until the client leaves, the sim drops it, or it closes."""
        sim = self.server.sim
        sub = sim.subscribe(device_id, prefix)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b":ok\n\n")
            last_write = time.monotonic()
            while True:
                silence = self.server.keepalive - (time.monotonic() - last_write)
                batch, end = sub.take(max(0.0, min(silence, CLIENT_CHECK)))
                if batch:
                    self._chunk(batch)
                    last_write = time.monotonic()
                elif end is None and time.monotonic() - last_write >= self.server.keepalive:
                    self._chunk(b":\n\n")  # keep-alive comment
                    last_write = time.monotonic()
                elif end is None and self._client_left():
                    return
                if end == StreamEnd.CLOSE:
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if end == StreamEnd.DROP:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
        except OSError:  # the client went away (BrokenPipe, reset, write timeout)
            log.debug("event stream to %s ended", self.address_string())
        finally:
            sim.unsubscribe(sub)

    def _client_left(self) -> bool:
        """The client closed its end (a read would give EOF), so stop writing to it."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    # -- the simulator's own controls ----------------------------------------------------

    def _admin(self, method: str, parts: list[str]) -> None:
        sim = self.server.sim
        if method == "POST" and parts == ["streams", "drop"]:
            self._send_json(200, {"ok": True, "dropped": sim.drop_streams()})
        elif method == "GET" and parts == ["flashes"]:
            self._send_json(
                200,
                [
                    {
                        "device_id": f.device_id,
                        "app_hash": f.app_hash,
                        "succeeded": f.succeeded,
                        "at": f.at,
                    }
                    for f in sim.flashes
                ],
            )
        elif method == "POST" and parts == ["publish"]:
            body = self._json_body()
            name, data = body.get("name"), body.get("data", "")
            count, device = body.get("count", 1), body.get("device")
            if not isinstance(name, str) or not name or not isinstance(data, str):
                raise SimRefused(400, "publish needs a `name` and a string `data`")
            if not isinstance(count, int) or count < 0 or not isinstance(device, str | None):
                raise SimRefused(400, "`count` must be a non-negative integer")
            published = sim.publish_many(name, data, count, device=device)
            self._send_json(200, {"ok": True, "published": published})
        elif method == "POST" and parts == ["throttle"]:
            body = self._json_body()
            requests, retry_after = body.get("requests", 1), body.get("retry_after", 1)
            if not isinstance(requests, int) or not isinstance(retry_after, int):
                raise SimRefused(400, "`requests` and `retry_after` must be integers")
            sim.throttle(requests, retry_after)
            self._send_json(200, {"ok": True})
        elif method == "POST" and len(parts) == 3 and parts[0] == "devices":
            device = self._device(parts[1])
            if parts[2] == "reboot":
                sim.reboot(device.id)
            elif parts[2] in ("online", "offline"):
                sim.set_online(device.id, parts[2] == "online")
            else:
                self._not_found()
                return
            self._send_json(200, {"ok": True, "id": device.id})
        else:
            self._not_found()


class CloudServer:
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
        self._httpd = _Server((host, port), sim, keepalive)
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def api_url(self) -> str:
        """e.g. http://127.0.0.1:41234 (what PARTICLE_API_URL should be)."""
        host = self._httpd.server_address[0]
        assert isinstance(host, str)  # an AF_INET/AF_INET6 server
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def start(self) -> CloudServer:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="sim-cloud-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """End every stream, stop serving, join every thread, close every socket."""
        if self._closed:
            return
        self._closed = True
        self.sim.close()  # streams end cleanly and their threads return
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.wake_connections()
        self._httpd.server_close()

    def __enter__(self) -> CloudServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
    token, devices.
    """
    try:
        server = CloudServer(sim, host, port, keepalive=keepalive)
    except OSError as exc:
        sim.close()
        raise StampError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        with server:
            stream = out or sys.stdout
            hello = {
                "api_url": server.api_url,
                "token": sim.token,
                "devices": device_summary(sim.devices),
            }
            stream.write(json.dumps(hello) + "\n")
            stream.flush()
            log.info("simulated Particle Cloud at %s", server.api_url)
            while not stop.wait(0.5):
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
