"""The Particle Cloud API the simulator serves, as aiohttp.web handlers.

Paths, status codes and JSON shapes follow Particle's Cloud API reference
(docs.particle.io/reference/cloud-apis/api) and what particle-api-js (src/Particle.js,
src/Agent.js, src/EventStream.js) sends:

- `GET /v1/devices`, `GET /v1/devices/:idOrName`, `GET /v1/devices/:id/:variable`
  (404 unknown variable, 408 "Timed out." for an offline device, after a wait when the
  cloud still believes it online), `POST /v1/devices/:id/:function` (404 "Function NAME
  not found" unless the firmware declares it).
- `PUT /v1/devices/:id` dispatched on its body like the real API: a `file` (flash;
  multipart with or without Content-Length, as particle-api-js `flashDevice` streams a
  file path chunked, with `file_type`, `build_target_version`, `latest` and other
  fields ignored), else `name` (rename), else `signal` ("1"/"0", `particle nyan`);
  multipart, urlencoded or JSON.
- `POST /v1/devices/events` (publish; it reaches the account's streams).
- Event streams `/v1/events/:prefix` (400 without a prefix), `/v1/devices/events[/:p]`,
  `/v1/devices/:id/events[/:p]`, `/v1/products/:p/events[/:p]`: `:ok` first, comment
  keep-alives (particle-api-js drops a stream silent for 15 s), query parameters such
  as particle-api-js's `nonce` ignored.
- Products: `GET /v1/products/:p/devices` (`page`, `per_page`) and
  `GET /v1/products/:p/devices/:id`.

Authentication, throttling and body draining are `stamp.sim.cloud_admin`'s middleware.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from stamp.sim.cloud import CloudSim
from stamp.sim.cloud_firmware import SimRefused
from stamp.sim.cloud_json import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    device_json,
    device_page,
    variable_json,
)
from stamp.sim.cloud_model import Product, SimDevice
from stamp.sim.cloud_streams import EVENT_TTL, StreamEnd, iso8601

MAX_UPLOAD = 8 * 1024 * 1024
"""The largest request body (a firmware upload) the simulator reads."""
OWNER_KEY: web.RequestKey[str] = web.RequestKey("owner", str)
"""The account the request's token belongs to (set by the auth middleware)."""


def owner_of(request: web.Request) -> str:
    return request[OWNER_KEY]


def reply(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def form_fields(request: web.Request) -> dict[str, Any]:
    """The body's fields, multipart, urlencoded or JSON; files as bytes (bounded)."""
    kind = request.content_type
    if kind == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise SimRefused(400, "Request body is not JSON") from None
        if not isinstance(body, dict):
            raise SimRefused(400, "Request body is not a JSON object")
        return body
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return {}
    fields: dict[str, Any] = {}
    for key, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            fields[key] = value.file.read(MAX_UPLOAD + 1)
            value.file.close()
        else:
            fields[key] = value
    return fields


class Handlers:
    """A group of one simulated cloud's handlers (the API, the product API, the
    simulator's controls): `routes()` lists them for aiohttp."""

    def __init__(self, sim: CloudSim) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def _product(self, request: web.Request) -> Product:
        """The path's `{product}` (an id or a slug); 404 for one the cloud does not have."""
        product = self.sim.product(request.match_info["product"])
        if product is None:
            raise SimRefused(404, "Product not found")
        return product


class CloudApi(Handlers):
    """The Particle Cloud API's handlers."""

    def __init__(self, sim: CloudSim, keepalive: float) -> None:
        super().__init__(sim)
        self.keepalive = keepalive

    def routes(self) -> list[web.RouteDef]:
        """Most specific first: aiohttp tries them in order."""
        return [
            web.get("/v1/devices", self.list_devices),
            web.post("/v1/devices/events", self.publish),
            web.get("/v1/devices/events", self.account_events),
            web.get("/v1/devices/events/{prefix:.+}", self.account_events),
            web.get("/v1/events", self.firehose),
            web.get("/v1/events/{prefix:.*}", self.firehose),
            web.get("/v1/devices/{device}", self.get_device),
            web.put("/v1/devices/{device}", self.update_device),
            web.get("/v1/devices/{device}/events", self.device_events),
            web.get("/v1/devices/{device}/events/{prefix:.+}", self.device_events),
            web.get("/v1/devices/{device}/{variable}", self.get_variable),
            web.post("/v1/devices/{device}/{function}", self.call_function),
            web.get("/v1/products/{product}/devices", self.product_devices),
            web.get("/v1/products/{product}/devices/{device}", self.product_device),
            web.get("/v1/products/{product}/events", self.product_events),
            web.get("/v1/products/{product}/events/{prefix:.+}", self.product_events),
        ]

    # -- devices -----------------------------------------------------------------------

    def _device(self, request: web.Request, key: str = "device") -> SimDevice:
        device = self.sim.find(request.match_info[key], owner_of(request))
        if device is None:
            raise SimRefused(
                403, "Permission Denied", info="I didn't recognize that device name or ID"
            )
        return device

    async def list_devices(self, request: web.Request) -> web.Response:
        devices = self.sim.devices_of(owner_of(request))
        return reply([device_json(d, detail=False) for d in devices])

    async def get_device(self, request: web.Request) -> web.Response:
        return reply(device_json(self._device(request), detail=True))

    async def get_variable(self, request: web.Request) -> web.Response:
        device = self._device(request)
        name = request.match_info["variable"]
        value = self.sim.variable(device.id, name, owner_of(request))
        return reply(variable_json(device, name, value))

    async def call_function(self, request: web.Request) -> web.Response:
        device = self._device(request)
        name = request.match_info["function"]
        await form_fields(request)  # `arg` or `args`: the simulated functions ignore it
        value = self.sim.call_function(device.id, name, owner_of(request))
        return reply({"id": device.id, "name": name, "connected": True, "return_value": value})

    async def update_device(self, request: web.Request) -> web.Response:
        """`PUT /v1/devices/:id`: flash a file, rename, or signal, by what the body holds."""
        device = self._device(request)
        fields = await form_fields(request)
        owner = owner_of(request)
        image = fields.get("file")
        if isinstance(image, bytes):
            if len(image) > MAX_UPLOAD:
                raise SimRefused(413, f"Request body larger than {MAX_UPLOAD} bytes")
            await asyncio.to_thread(self.sim.flash, device.id, image, owner)
            return reply({"ok": True, "id": device.id, "status": "Update started"})
        if "file" in fields:
            raise SimRefused(400, "Nothing to flash: `file` is not a file", errors=["No file"])
        if isinstance(fields.get("name"), str) and fields["name"]:
            renamed = self.sim.rename(device.id, fields["name"], owner)
            return reply({"id": renamed.id, "name": renamed.name, "updated_at": _now(self.sim)})
        if "signal" in fields:
            on = str(fields["signal"]).lower() in ("1", "true", "on")
            self.sim.signal(device.id, on, owner)
            return reply({"id": device.id, "connected": True, "signaling": on})
        raise SimRefused(
            400,
            "Nothing to do: expected a multipart/form-data upload with a `file` field, "
            "a `name` or a `signal`",
            errors=["No file"],
        )

    async def publish(self, request: web.Request) -> web.Response:
        fields = await form_fields(request)
        name, data = fields.get("name"), fields.get("data", "")
        if not isinstance(name, str) or not name:
            raise SimRefused(400, "Event name is required")
        ttl = str(fields.get("ttl", EVENT_TTL))
        self.sim.publish_as(
            owner_of(request), name, str(data or ""), ttl=int(ttl) if ttl.isdigit() else EVENT_TTL
        )
        return reply({"ok": True})

    # -- products ----------------------------------------------------------------------

    async def product_devices(self, request: web.Request) -> web.Response:
        product = self._product(request)
        page = _positive(request.query.get("page"), 1)
        per_page = min(_positive(request.query.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
        devices = self.sim.devices_of(owner_of(request), product.id)
        if request.query.get("groups"):  # comma-separated; a device in any of them
            wanted = set(request.query["groups"].split(","))
            devices = [d for d in devices if wanted & set(d.groups)]
        return reply(device_page(devices, page, per_page))

    async def product_device(self, request: web.Request) -> web.Response:
        product = self._product(request)
        device = self._device(request)
        if device.product_id != product.id:
            raise SimRefused(404, "Device not found in this product")
        return reply(device_json(device, detail=True))

    # -- event streams -----------------------------------------------------------------

    async def firehose(self, request: web.Request) -> web.StreamResponse:
        prefix = _prefix(request)
        if not prefix:
            raise SimRefused(400, "event prefix filter is required")
        return await self._stream(request, None, prefix, owner=None)

    async def account_events(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, None, _prefix(request), owner=owner_of(request))

    async def device_events(self, request: web.Request) -> web.StreamResponse:
        device = self._device(request)
        return await self._stream(request, device.id, _prefix(request), owner=None)

    async def product_events(self, request: web.Request) -> web.StreamResponse:
        product = self._product(request)
        return await self._stream(request, None, _prefix(request), product_id=product.id)

    async def _stream(
        self,
        request: web.Request,
        device_id: str | None,
        prefix: str,
        *,
        owner: str | None = None,
        product_id: int | None = None,
    ) -> web.StreamResponse:
        """Server-Sent Events until the client leaves, the sim drops it, or it closes."""
        sub = self.sim.subscribe(device_id, prefix, owner=owner, product_id=product_id)
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            with suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(ready.set)

        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            await response.write(b":ok\n\n")
            sub.set_waker(wake)
            last_write = loop.time()
            while True:
                silence = self.keepalive - (loop.time() - last_write)
                if silence <= 0:
                    await response.write(b":\n\n")  # keep-alive comment
                    last_write = loop.time()
                    continue
                with suppress(TimeoutError):
                    await asyncio.wait_for(ready.wait(), silence)
                ready.clear()
                batch, end = sub.take(0)
                if batch:
                    await response.write(batch)
                    last_write = loop.time()
                if end is StreamEnd.CLOSE:
                    await response.write_eof()
                    return response
                if end is StreamEnd.DROP:
                    # A network drop: no terminating chunk, the socket just goes.
                    if request.transport is not None:
                        request.transport.abort()
                    return response
        except (ConnectionError, RuntimeError):  # the client went away mid-write
            return response
        finally:
            self.sim.unsubscribe(sub)


def _prefix(request: web.Request) -> str:
    return unquote(request.match_info.get("prefix", ""))


def _positive(text: str | None, default: int) -> int:
    try:
        value = int(text) if text is not None else default
    except ValueError:
        raise SimRefused(400, f"{text!r} is not a number") from None
    return value if value >= 1 else default


def _now(sim: CloudSim) -> str:
    return iso8601(sim.now())
