"""What the Particle Cloud says of a device: `DeviceInfo`, and `ProductDevice` for a product's.

`device_info` and `product_device` read them from the JSON of `GET /v1/devices[/:id]` and
`GET /v1/products/:p/devices` (field names from Particle's Cloud API reference, "List
devices in a product": `page`, `per_page`, `groups`; the answer `{devices, customers,
meta: {total_pages}}`); a value of the wrong type counts as absent, a device without an
id is a ValueError. `ProductCalls` is the part of `CloudClient` that pages through a
product's devices, each page read only up to MAX_PAGE_BYTES.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from stamp.device.transport.cloud_records import Answer, DeviceInfo, device_info
from stamp.errors import ConfigError, StampError

PRODUCT_PAGE = 1000
"""Devices asked for per page of a product's device list; a cloud that serves fewer says so
in `meta.total_pages`, which the listing follows."""
MAX_PAGES = 1000
"""Pages of a device list read at most (a million devices at 1,000 a page): a bound on a
broken `meta`."""
MAX_PAGE_BYTES = 16 * 1024 * 1024
"""The largest device-list page read (1,000 devices are about 1 MB)."""


@dataclass(frozen=True)
class ProductDevice:
    """A device of a Particle product, with what the product's device list says of it."""

    info: DeviceInfo
    """The device itself."""
    firmware_version: int | None = None
    """The product firmware version Particle believes it runs."""
    desired_firmware_version: int | None = None
    """The version it is locked to (None: it follows the product's releases)."""
    targeted_firmware_release_version: int | None = None
    """The released version Particle targets it with."""
    groups: tuple[str, ...] = ()
    """The product groups it is in."""
    development: bool = False
    """Marked as a development device (Particle sends it no releases)."""

    @property
    def target_version(self) -> int | None:
        """The version Particle means it to run: its lock, else the release targeting it."""
        if self.desired_firmware_version is not None:
            return self.desired_firmware_version
        return self.targeted_firmware_release_version


def product_device(item: Any) -> ProductDevice:
    """A device of a product's device list from its JSON; ValueError for one without an id."""
    info = device_info(item)
    if info is None:
        raise ValueError("a device without an id")
    groups = item.get("groups")
    return ProductDevice(
        info=info,
        firmware_version=_version(item, "firmware_version"),
        desired_firmware_version=_version(item, "desired_firmware_version"),
        targeted_firmware_release_version=_version(item, "targeted_firmware_release_version"),
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
        development=item.get("development") is True,
    )


def _version(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ProductCalls:
    """A product's device list (a mixin of `CloudClient`, which supplies the requests)."""

    def _request(self, method: str, path: str, *, limit: int, **kwargs: Any) -> Answer:
        raise NotImplementedError

    def _failure(
        self, response: Answer, *, device: str | None = None, product: str | None = None
    ) -> StampError:
        raise NotImplementedError

    def _json(self, response: Answer) -> Any:
        raise NotImplementedError

    def _not_the_api(self, what: str) -> ConfigError:
        raise NotImplementedError

    def list_product_devices(
        self, product: str, *, group: str | None = None, per_page: int = PRODUCT_PAGE
    ) -> Iterator[ProductDevice]:
        """Every device of a product (of one group), page by page as the cloud serves them."""
        params: dict[str, str | int] = {"per_page": per_page}
        if group is not None:
            params["groups"] = group
        path = f"/v1/products/{quote(product, safe='')}/devices"
        page, pages = 1, 1
        while page <= min(pages, MAX_PAGES):
            response = self._request(
                "GET", path, params={**params, "page": page}, limit=MAX_PAGE_BYTES
            )
            if response.status_code != 200:
                raise self._failure(response, product=product)
            body = self._json(response)
            devices = body.get("devices") if isinstance(body, dict) else None
            meta = body.get("meta") if isinstance(body, dict) else None
            if not isinstance(devices, list) or not isinstance(meta, dict):
                raise self._not_the_api(f"GET {path} did not return {{devices, meta}}")
            total = meta.get("total_pages")
            pages = total if isinstance(total, int) else page
            for item in devices:
                try:
                    yield product_device(item)
                except ValueError as exc:
                    raise self._not_the_api(str(exc)) from None
            page += 1
