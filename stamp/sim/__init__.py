"""Simulated devices and a simulated Particle Cloud (SPEC section 8).

The cloud simulator's HTTP server is an optional dependency (the `sim` extra);
`require_sim_extra()` says exactly what to install when it is missing.
"""

from __future__ import annotations

from stamp.errors import StampError

SIM_EXTRA_INSTALL = "pip install 'stamp-firmware[sim]'"


class SimExtraMissing(StampError):
    """The `sim` extra (aiohttp) is not installed (exit 2)."""


def require_sim_extra() -> None:
    """Raise SimExtraMissing unless aiohttp, the simulator's HTTP server, is importable."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise SimExtraMissing(
            f"the simulated Particle Cloud needs aiohttp, which is not installed: "
            f"{SIM_EXTRA_INSTALL}"
        ) from None
