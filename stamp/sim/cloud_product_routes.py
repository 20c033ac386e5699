"""The product firmware API of the simulated cloud, as aiohttp.web handlers.

Paths and fields follow Particle's Cloud API reference ("Product firmware", "Update
product device"):

- `POST /v1/products/:p/firmware` multipart: the binary (the reference names the field
  `binary`; particle-api-js's `uploadProductFirmware` sends it as `firmware.bin`: any
  file field is taken), `version`, `title`, `description`;
- `PUT /v1/products/:p/firmware/release` `version`, `product_default` (true: the whole
  product), `groups` (a list, or comma-separated), and the simulator's own `rollout`
  (seconds the updates are spread over; the real cloud's pace is its own);
- `PUT /v1/products/:p/devices/:id` `desired_firmware_version` (null unlocks),
  `development`, `groups`.

The behaviour is `stamp.sim.cloud_product.ProductLife`'s.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from stamp.sim.cloud_firmware import SimRefused
from stamp.sim.cloud_json import device_json
from stamp.sim.cloud_routes import MAX_UPLOAD, Handlers, form_fields, owner_of, reply

_TRUE = ("1", "true", "yes", "on")


class ProductApi(Handlers):
    """The product firmware handlers of one simulated cloud."""

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/products/{product}/firmware", self.upload),
            web.put("/v1/products/{product}/firmware/release", self.release),
            web.put("/v1/products/{product}/devices/{device}", self.update_device),
        ]

    async def upload(self, request: web.Request) -> web.Response:
        product = self._product(request)
        fields = await form_fields(request)
        image = next((value for value in fields.values() if isinstance(value, bytes)), None)
        if image is None:
            raise SimRefused(400, "A `binary` file is required")
        if len(image) > MAX_UPLOAD:
            raise SimRefused(413, f"Request body larger than {MAX_UPLOAD} bytes")
        version = _integer(fields.get("version"), "version")
        self.sim.add_product_firmware(product, version, image)
        return reply(
            {
                "version": version,
                "title": str(fields.get("title", "")),
                "description": str(fields.get("description", "")),
                "product_default": False,
                "size": len(image),
            }
        )

    async def release(self, request: web.Request) -> web.Response:
        product = self._product(request)
        fields = await form_fields(request)
        version = _integer(fields.get("version"), "version")
        groups = _groups(fields.get("groups"))
        default = str(fields.get("product_default", "")).lower() in _TRUE
        rollout = float(fields.get("rollout", 0) or 0)
        targeted = self.sim.release(
            product, version, groups=groups, product_default=default, rollout=rollout
        )
        return reply(
            {
                "version": version,
                "product_default": default,
                "groups": list(groups),
                "targeted_devices": len(targeted),
            }
        )

    async def update_device(self, request: web.Request) -> web.Response:
        product = self._product(request)
        device = self.sim.find(request.match_info["device"], owner_of(request))
        if device is None or device.product_id != product.id:
            raise SimRefused(404, "Device not found in this product")
        fields = await form_fields(request)
        if "desired_firmware_version" in fields:
            wanted = fields["desired_firmware_version"]
            version = None if wanted in (None, "", "null") else _integer(wanted, "version")
            self.sim.lock_version(device.id, version)
        if "development" in fields:
            self.sim.set_development(device.id, str(fields["development"]).lower() in _TRUE)
        if "groups" in fields:
            self.sim.set_groups(device.id, _groups(fields["groups"]))
        updated = self.sim.find(device.id)
        assert updated is not None
        return reply(device_json(updated, detail=True))


def _integer(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SimRefused(400, f"`{name}` must be an integer") from None
    if number < 0:
        raise SimRefused(400, f"`{name}` must not be negative")
    return number


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(g) for g in value if str(g))
    if isinstance(value, str):
        return tuple(g for g in value.split(",") if g)
    return ()
