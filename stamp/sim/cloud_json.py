"""The JSON bodies of the simulated Particle Cloud, in the shapes Particle documents.

Field names follow Particle's Cloud API reference (docs.particle.io/reference/cloud-apis/
api): "List devices" / "Get device information" for a device, "List devices in a
product" for the product fields and the `{devices, customers, meta: {total_pages}}`
page, "Get a variable value" for `{name, result, coreInfo}`, and the OAuth errors
(`invalid_request` "The access token was not found", `invalid_token`). particle-api-js
(src/Particle.js `listDevices`, `getVariable`, `updateDevice`) reads the same fields.
"""

from __future__ import annotations

import math
from typing import Any

from stamp.sim.cloud_model import SimDevice
from stamp.sim.cloud_streams import iso8601

SYSTEM_FIRMWARE = "1.5.2"
DEFAULT_PER_PAGE = 25
"""Particle's default page size for product device lists."""
MAX_PER_PAGE = 1000

NO_TOKEN = {
    "error": "invalid_request",
    "error_description": "The access token was not found",
}
"""What api.particle.io answers (400) to a request without any token."""
INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is invalid.",
}
"""What api.particle.io answers (401) to a wrong or expired token."""


def device_json(device: SimDevice, *, detail: bool) -> dict[str, Any]:
    """A device as `GET /v1/devices` (or, with detail, `GET /v1/devices/:id`) shows it."""
    # A device that never reached the cloud has no last_heard (null in Particle's list).
    heard = iso8601(device.last_heard) if device.last_heard else None
    variables = {"stamp": "string"} if device.online and device.firmware.report else {}
    record: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "last_app": None,
        "last_ip_address": "127.0.0.1",
        "last_heard": heard,
        "last_handshake_at": heard,
        # A developer device's product_id is its platform id (Particle's API reference).
        "product_id": device.product_id or device.platform_id,
        "online": device.online,
        "connected": device.online,
        "platform_id": device.platform_id,
        "cellular": False,
        "notes": None,
        "functions": list(device.functions),
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
    if device.product_id is not None:
        record.update(product_fields(device))
    return record


def product_fields(device: SimDevice) -> dict[str, Any]:
    """The fields a product device has on top of a developer device's."""
    return {
        "firmware_version": device.firmware.product_version or 1,
        "desired_firmware_version": device.desired_firmware_version,
        "targeted_firmware_release_version": device.targeted_firmware_release_version,
        "groups": list(device.groups),
        "development": device.development,
        "quarantined": False,
        "denied": False,
        "owner": None,
    }


def device_page(devices: list[SimDevice], page: int, per_page: int) -> dict[str, Any]:
    """One page of `GET /v1/products/:p/devices`."""
    start = (page - 1) * per_page
    return {
        "devices": [device_json(d, detail=False) for d in devices[start : start + per_page]],
        "customers": [],
        "meta": {"total_pages": max(1, math.ceil(len(devices) / per_page))},
    }


def variable_json(device: SimDevice, name: str, value: str) -> dict[str, Any]:
    """`GET /v1/devices/:id/:variable`."""
    heard = iso8601(device.last_heard)
    return {
        "cmd": "VarReturn",
        "name": name,
        "result": value,
        "coreInfo": {
            "last_app": "",
            "last_heard": heard,
            "connected": True,
            "last_handshake_at": heard,
            "deviceID": device.id,
            "product_id": device.product_id or device.platform_id,
        },
    }
