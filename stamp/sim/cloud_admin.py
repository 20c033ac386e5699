"""What every request to the simulated cloud goes through, and the simulator's own controls.

`guard` is the middleware: it logs the request (the token redacted), authenticates it
the way api.particle.io does (`Authorization: Bearer`, or the deprecated `access_token`
query or body parameter; none at all is 400 `invalid_request`, a wrong one 401
`invalid_token`), throttles it when a test asked for 429s, turns a `SimRefused` or an
aiohttp HTTP error into the cloud's JSON error, and — errors included — reads whatever is
left of the request body before answering, so a kept-alive connection stays usable.

Paths under `/_sim/` are the simulator's controls for tests and demos (drop the streams,
reboot a device, make one vanish, publish events, list the flashes), behind the same token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web

from stamp.redact import redact
from stamp.sim.cloud import CloudSim
from stamp.sim.cloud_firmware import SimRefused
from stamp.sim.cloud_json import INVALID_TOKEN, NO_TOKEN
from stamp.sim.cloud_routes import MAX_UPLOAD, OWNER_KEY, Handlers, form_fields, reply

log = logging.getLogger("stamp.sim.cloud")

MAX_DRAIN = 2 * MAX_UPLOAD
"""Past this many unread body bytes the connection is closed instead of drained."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    # Deprecated but still accepted by the real API: a query or body parameter.
    if "access_token" in request.query:
        return request.query["access_token"]
    if request.body_exists and request.content_type in (
        "application/x-www-form-urlencoded",
        "application/json",
    ):
        field = (await form_fields(request)).get("access_token")
        return field if isinstance(field, str) else None
    return None


async def _drain(request: web.Request) -> None:
    """Read the rest of the body, so the next request on the connection parses."""
    left = MAX_DRAIN
    while not request.content.at_eof():
        chunk = await request.content.readany()
        left -= len(chunk)
        if not chunk or left < 0:
            break
    if left < 0 and request.transport is not None:
        request.transport.close()


def make_guard(sim: CloudSim) -> Any:
    """The middleware of one simulated cloud (see the module docstring)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await _answer(sim, request, handler)
        finally:
            await _drain(request)

    return guard


async def _answer(sim: CloudSim, request: web.Request, handler: Handler) -> web.StreamResponse:
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    log.debug("%s %s%s", request.method, redact(request.path_qs), " (chunked)" * chunked)
    try:
        token = await _token(request)
        if token is None:
            return reply(NO_TOKEN, 400)
        owner = sim.account(token)
        if owner is None:
            response = reply(INVALID_TOKEN, 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="Particle", error="invalid_token"'
            return response
        request[OWNER_KEY] = owner
        if not request.path.startswith("/_sim/"):
            retry_after = sim.take_throttle()
            if retry_after is not None:
                response = reply({"ok": False, "error": "Too many requests"}, 429)
                response.headers["Retry-After"] = str(retry_after)
                return response
        return await handler(request)
    except SimRefused as refused:
        if refused.after > 0:
            await asyncio.sleep(refused.after)  # the cloud waited for the device
        return reply(refused.body, refused.status)
    except web.HTTPException as exc:  # no route, wrong method, body too large
        return reply({"ok": False, "error": exc.reason}, exc.status)


async def stamp_date(request: web.Request, response: web.StreamResponse) -> None:
    """The Date header tells clients the cloud's time (stamp corrects a skewed clock by
    it), so it comes from the simulated cloud's clock."""
    sim = request.app[SIM_KEY]
    response.headers["Date"] = formatdate(sim.now(), usegmt=True)


SIM_KEY: web.AppKey[CloudSim] = web.AppKey("sim", CloudSim)


class Admin(Handlers):
    """`/_sim/...`: the simulator's own controls."""

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_sim/streams/drop", self.drop),
            web.get("/_sim/streams", self.streams),
            web.get("/_sim/flashes", self.flashes),
            web.post("/_sim/publish", self.publish),
            web.post("/_sim/throttle", self.throttle),
            web.post("/_sim/devices/{device}/{what}", self.device),
        ]

    async def drop(self, request: web.Request) -> web.Response:
        return reply({"ok": True, "dropped": self.sim.drop_streams()})

    async def streams(self, request: web.Request) -> web.Response:
        return reply({"open": self.sim.subscriber_count()})

    async def flashes(self, request: web.Request) -> web.Response:
        return reply(
            [
                {"device_id": f.device_id, "app_hash": f.app_hash, "succeeded": f.succeeded}
                | {"at": f.at}
                for f in self.sim.flashes
            ]
        )

    async def publish(self, request: web.Request) -> web.Response:
        body = await form_fields(request)
        name, data = body.get("name"), body.get("data", "")
        count, device = body.get("count", 1), body.get("device")
        if not isinstance(name, str) or not name or not isinstance(data, str):
            raise SimRefused(400, "publish needs a `name` and a string `data`")
        if not isinstance(count, int) or count < 0 or not isinstance(device, str | None):
            raise SimRefused(400, "`count` must be a non-negative integer")
        # A blocking publish waits for slow streams: off the event loop that feeds them.
        published = await asyncio.to_thread(self.sim.publish_many, name, data, count, device=device)
        return reply({"ok": True, "published": published})

    async def throttle(self, request: web.Request) -> web.Response:
        body = await form_fields(request)
        requests, retry_after = body.get("requests", 1), body.get("retry_after", 1)
        if not isinstance(requests, int) or not isinstance(retry_after, int):
            raise SimRefused(400, "`requests` and `retry_after` must be integers")
        self.sim.throttle(requests, retry_after)
        return reply({"ok": True})

    async def device(self, request: web.Request) -> web.Response:
        device = self.sim.find(request.match_info["device"])
        if device is None:
            raise SimRefused(403, "Permission Denied")
        what = request.match_info["what"]
        if what == "reboot":
            self.sim.reboot(device.id)
        elif what in ("online", "offline"):
            self.sim.set_online(device.id, what == "online")
        elif what == "vanish":
            self.sim.vanish(device.id)
        else:
            raise SimRefused(404, "Not Found")
        return reply({"ok": True, "id": device.id})
