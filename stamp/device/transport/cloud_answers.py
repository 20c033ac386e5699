"""What the Particle Cloud's error answers mean: one line of what it said (without the
token), and the StampError each kind of refusal becomes (`failure`).

Kept beside `stamp.device.transport.cloud_api`, which sends the requests; the answers'
words are api.particle.io's (particle-api-js reads the same `error`,
`error_description` and `errors` fields).
"""

from __future__ import annotations

import random

import httpx

from stamp.device.transport.bounded import BadJSON, backoff, decode_json, retry_after
from stamp.device.transport.cloud_records import Answer, RateLimited
from stamp.errors import AuthError, DeviceError, DeviceUnreachable, StampError
from stamp.redact import redact

REJECTED_TOKEN = (
    "the Particle Cloud rejected the token ({status}): log in again with `particle login` "
    "or set PARTICLE_ACCESS_TOKEN"
)


def answer_message(response: Answer) -> str:
    """What the cloud said, in one line, without the token."""
    try:
        body = decode_json(response.content)
    except BadJSON:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("error_description", "error", "info"):
            value = body.get(key)
            if isinstance(value, str) and value and value not in parts:
                parts.append(value)
        errors = body.get("errors")
        if isinstance(errors, list):
            # The cloud repeats its message in `errors`: say each thing once.
            parts.extend(e for e in errors if isinstance(e, str) and not any(e in p for p in parts))
    text = "; ".join(parts) or f"HTTP {response.status_code}"
    return redact(text)[:300]


def failure(
    response: Answer, host: str, *, device: str | None = None, product: str | None = None
) -> StampError:
    """The StampError for an unexpected answer from the cloud at `host` (not a 429)."""
    status = response.status_code
    message = answer_message(response)
    if product is not None and status in (403, 404) and "token" not in message.lower():
        return DeviceError(
            f"no product {product!r} for this Particle account (at {host}): check "
            "the product id or slug in the Particle console",
            detail=message,
        )
    if status == 401 or (status == 400 and "token" in message.lower()):
        return AuthError(REJECTED_TOKEN.format(status=status), detail=message)
    if device is not None and (status == 404 or (status == 403 and "recognize" in message.lower())):
        # api.particle.io answers 403 "I didn't recognize that device name or ID".
        return DeviceError(
            f"no such device {device!r} in this Particle account "
            f"(at {host}): check the id or name with `particle list`",
            detail=message,
        )
    if status == 403:
        return AuthError(REJECTED_TOKEN.format(status=status), detail=message)
    if status >= 500:
        return DeviceUnreachable(f"the Particle Cloud at {host} failed (HTTP {status}): {message}")
    return StampError(f"the Particle Cloud at {host} answered HTTP {status}: {message}")


def rate_limited(
    response: Answer, host: str, attempt: int, *, cap: float, rng: random.Random
) -> RateLimited:
    """The 429 as a RateLimited that says how long to wait: the Retry-After asked for
    (more than `cap` is said, not waited for), else an exponential, jittered backoff."""
    asked = retry_after(response.headers.get("retry-after"))
    too_long = asked is not None and asked > cap
    wait = asked if asked is not None and too_long else backoff(asked, attempt, cap=cap, rng=rng)
    return RateLimited(
        f"the Particle Cloud at {host} is rate limiting requests (429): try again in {wait:g} s",
        wait,
    )


def unreachable(exc: httpx.TransportError, host: str, *, late: bool) -> DeviceUnreachable:
    """A transport failure; `late`: the deadline cut the exchange."""
    if late:
        return DeviceUnreachable(
            f"the Particle Cloud gave no answer within the timeout (at {host})",
            detail=type(exc).__name__,
        )
    reason = redact(str(exc)) or type(exc).__name__
    return DeviceUnreachable(
        f"cannot reach the Particle Cloud at {host}: {reason}", detail=type(exc).__name__
    )


def is_token_error(response: Answer) -> bool:
    """api.particle.io's 400 for a request without a token (`invalid_request`)."""
    try:
        body = decode_json(response.content)
    except BadJSON:
        return False
    return isinstance(body, dict) and body.get("error") == "invalid_request"
