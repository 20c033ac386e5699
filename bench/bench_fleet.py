"""Benchmark: `stamp fleet` over a simulated product of 10,000 devices.

`stamp sim cloud --products 1 --devices N --firmware v2.bin` runs as its own process and
`stamp fleet --product 10001 --manifest v2.stamp.json --json` as another, the way a user
runs them. Once the fleet's product stream is open (GET /_sim/streams), the simulator
publishes --noise events that are no report, then one `stamp` event per device
(POST /_sim/publish, round-robin over the devices: every device reports exactly once,
as after a rollout). Measured: the time from the moment the last device's report was
published to the end of `stamp fleet` (its final report printed and the process gone),
and the fleet process's peak resident memory (ru_maxrss from wait4), for 1,000 and N
devices (the figure per device) and for N devices with and without the noise (flat in
the number of events). Bounded: loopback only, every wait has a timeout, both children
are always stopped.

Run: .venv/bin/python bench/bench_fleet.py [--devices N] [--noise N] [--no-write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, update_readme_section

from stamp.artifact.manifest import Artifact, Manifest, write_manifest
from stamp.artifact.particle.build import build_user_part
from stamp.artifact.particle.module import parse_module
from stamp.identity import Identity
from stamp.record import StampRecord

README = Path(__file__).resolve().parent / "README.md"
GIT = "9f8e7d6c5b4a" + "1" * 28
EDIT = 12
WAIT = 900.0
PRODUCT = "10001"


def make_build(directory: Path) -> tuple[Path, Path, str]:
    """v2.bin (a product module with a stamp record), its manifest, its `stamp` report."""
    record = StampRecord(edit=EDIT, git=GIT, dirty=False)
    image = build_user_part(b"\x00" * 32 + record.pack(), product_id=10001, product_version=2)
    module = parse_module(image)
    assert module.app_hash is not None
    binary = directory / "v2.bin"
    binary.write_bytes(image)
    digest = hashlib.sha256(image).hexdigest()
    manifest = Manifest(
        identity=Identity(
            edit=EDIT, git=GIT, dirty=False, app_hash=module.app_hash, image_sha256=digest
        ),
        recorded_at="2026-12-01T00:00:00Z",
        bin=Artifact(path=binary.name, sha256=digest, size=len(image)),
        particle=module.to_json(),
    )
    manifest_path = directory / "v2.stamp.json"
    write_manifest(manifest, manifest_path)
    report = json.dumps({"edit": EDIT, "git": GIT, "dirty": False}, separators=(",", ":"))
    return binary, manifest_path, report


def wait_for_stream(admin: httpx.Client) -> None:
    deadline = time.monotonic() + WAIT
    while admin.get("/_sim/streams").json()["open"] < 1:
        assert time.monotonic() < deadline, "stamp fleet never opened the product stream"
        time.sleep(0.05)


def one_run(devices: int, noise: int, work: Path) -> dict[str, Any]:
    """One survey of `devices` devices after `noise` other events; its figures."""
    binary, manifest_path, report = make_build(work)
    sim = subprocess.Popen(
        [
            *(sys.executable, "-m", "stamp", "sim", "cloud", "--port", "0", "--seed", "1"),
            *("--products", "1", "--devices", str(devices), "--firmware", str(binary)),
            *("--keepalive", "60"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    fleet: subprocess.Popen[str] | None = None
    try:
        assert sim.stdout is not None
        hello = json.loads(sim.stdout.readline())
        env = {
            **os.environ,
            "PARTICLE_API_URL": hello["api_url"],
            "PARTICLE_ACCESS_TOKEN": hello["token"],
            "NO_COLOR": "1",
        }
        # --listen well past the publishing: every device is heard on the stream.
        fleet = subprocess.Popen(
            [
                *(sys.executable, "-m", "stamp", "fleet", "--product", PRODUCT, "--json"),
                *("--manifest", str(manifest_path), "--timeout", str(WAIT), "--listen", "200"),
            ],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        headers = {"Authorization": f"Bearer {hello['token']}"}
        with httpx.Client(base_url=hello["api_url"], headers=headers, timeout=WAIT) as admin:
            wait_for_stream(admin)
            started = time.perf_counter()
            if noise:
                admin.post("/_sim/publish", json={"name": "noise/x", "data": "n", "count": noise})
            admin.post("/_sim/publish", json={"name": "stamp", "data": report, "count": devices})
            last_report = time.perf_counter()
        assert fleet.stdout is not None
        out = fleet.stdout.read()
        _, status, usage = os.wait4(fleet.pid, 0)
        ended = time.perf_counter()
        fleet.returncode = os.waitstatus_to_exitcode(status)
    finally:
        for proc in (fleet, sim):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.communicate(timeout=60)
    record = json.loads(out)
    assert fleet.returncode == 0, record["message"]
    assert record["counts"]["expected"] == devices, record["counts"]
    assert record["variable_reads"] == 0, record["variable_reads"]
    return {
        "devices": devices,
        "noise": noise,
        "events": record["events"],
        "tail": ended - last_report,
        "publishing": last_report - started,
        "peak_kib": usage.ru_maxrss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--noise", type=int, default=100_000, help="Non-report events first.")
    parser.add_argument("--no-write", action="store_true", help="Do not update bench/README.md.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            one_run(1000, 0, Path(tmp)),
            one_run(args.devices, 0, Path(tmp)),
            one_run(args.devices, args.noise, Path(tmp)),
        ]
    small, big, noisy = runs
    per_device = (big["peak_kib"] - small["peak_kib"]) * 1024 / (big["devices"] - small["devices"])
    rows = [
        f"| {r['devices']:,} | {r['events']:,} | {r['publishing']:.2f} s | {r['tail']:.2f} s "
        f"| {r['peak_kib'] / 1024:,.1f} MiB |"
        for r in runs
    ]
    body = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, Python "
            f"{sys.version.split()[0]}; `bench/bench_fleet.py`: `stamp sim cloud --products 1 "
            "--devices N` and `stamp fleet --product 10001 --json` as two processes; once the "
            "fleet's product stream is open, the simulator publishes the other events, then "
            "one `stamp` event per device (every device reports once, no variable is read).",
            "",
            "| devices | events heard | publishing took | last report to final report "
            "| peak memory of `stamp fleet` |",
            "|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Memory per device: **{per_device / 1024:.1f} KiB** ((peak at {big['devices']:,} "
            f"- peak at 1,000) / {big['devices'] - 1000:,}). "
            f"With {noisy['noise']:,} more events the peak moved by "
            f"{(noisy['peak_kib'] - big['peak_kib']) / 1024:+.1f} MiB: flat in the number of "
            "events (each event updates one device's slot and is dropped; the stream's queue "
            "holds at most 1,000). The tail is the fleet catching up with the events still "
            "queued, the final device-list read (Particle's view), and the JSON of every "
            "device; both processes share the machine's 2 cores.",
        ]
    )
    print(body)
    if not args.no_write:
        update_readme_section(README, "stamp fleet: 10,000 devices", body)


if __name__ == "__main__":
    main()
