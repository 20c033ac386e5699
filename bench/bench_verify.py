"""Benchmark: how fast `stamp verify` gives the verdict once the report line arrives.

A real pseudo-terminal plays the board. Each run waits for stamp's `?stamp` query on the
pty (so the port is open and the listen loop running), writes the `@stamp` line, and
measures until the verdict:

- whole process: until the VERIFIED line appears on `stamp verify`'s stdout (includes
  the JSON parse, the comparison, rendering, and the pipe);
- in process: until `stamp.device.verify.verify()` returns, with a `SerialTransport` on the pty.

Also reported: process start until stamp's first query (Python start-up, imports, config,
history, port open). Medians over N runs.
Run: .venv/bin/python bench/bench_verify.py [--runs N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import machine, median_ms, update_readme_section

from stamp.artifact.manifest import Manifest, write_manifest
from stamp.device.report_line import QUERY
from stamp.identity import Identity

GIT = "9f8e7d6c5b4a" + "1" * 28
BUILD_ID = "5f3a9c21" + "ab" * 16
READY_TIMEOUT = 30.0


def make_manifest(directory: Path) -> Path:
    manifest = Manifest(
        identity=Identity(edit=111, git=GIT, dirty=False, build_id=BUILD_ID),
        recorded_at="2026-01-01T00:00:00Z",
    )
    path = directory / "app.stamp.json"
    write_manifest(manifest, path)
    return path


REPORT = (
    b"@stamp "
    + json.dumps({"edit": 111, "git": GIT, "dirty": False, "build_id": BUILD_ID}).encode()
    + b"\r\n"
)


class Pty:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)

    def wait_for_query(self) -> None:
        """Block until the host has sent `?stamp` (the listen loop is running)."""
        seen = b""
        end = time.monotonic() + READY_TIMEOUT
        while QUERY not in seen:
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError("stamp never asked the pty for a report")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                seen += os.read(self.master, 1024)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def whole_process(manifest: Path, cwd: Path) -> tuple[float, float]:
    """(start until the first query, report line until the verdict on stdout), seconds."""
    pty = Pty()
    env = {**os.environ, "NO_COLOR": "1"}
    args = [sys.executable, "-m", "stamp", "-q", "verify", "--device", f"serial:{pty.port}"]
    args += ["--manifest", str(manifest), "--timeout", "30"]
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert proc.stdout is not None
            pty.wait_for_query()
            ready = time.perf_counter()
            sent = time.perf_counter()
            os.write(pty.master, REPORT)
            line = proc.stdout.readline()
            done = time.perf_counter()
            if not line.startswith(b"VERIFIED"):
                raise RuntimeError(f"unexpected verdict {line!r}")
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    finally:
        pty.close()
    return ready - started, done - sent


def in_process(manifest_path: Path) -> float:
    """Report line written until `verify()` returns, seconds."""
    from stamp.artifact.manifest import load_manifest
    from stamp.device.transport.serial import SerialTransport
    from stamp.device.verify import VerdictStatus, verify

    expected = load_manifest(manifest_path)
    pty = Pty()
    sent: list[float] = []

    def board() -> None:
        pty.wait_for_query()
        sent.append(time.perf_counter())
        os.write(pty.master, REPORT)

    thread = threading.Thread(target=board)
    try:
        thread.start()
        with SerialTransport(pty.port) as transport:
            verdict = verify(transport, expected, [], timeout=30)
        done = time.perf_counter()
        thread.join()
    finally:
        pty.close()
    if verdict.status is not VerdictStatus.VERIFIED:
        raise RuntimeError(f"unexpected verdict {verdict.status}")
    return done - sent[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="whole-process runs (default 15)")
    parser.add_argument("--inproc-runs", type=int, default=50, help="in-process runs")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/README.md")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        manifest = make_manifest(cwd)
        whole_process(manifest, cwd)  # warm-up: bytecode caches
        runs = [whole_process(manifest, cwd) for _ in range(options.runs)]
        starts = [start for start, _ in runs]
        latencies = [latency for _, latency in runs]
        in_proc = [in_process(manifest) for _ in range(options.inproc_runs)]

    def p90(samples: list[float]) -> float:
        return statistics.quantiles(samples, n=10)[-1] * 1000.0

    rows = [
        ("whole process: report line → verdict on stdout", latencies),
        ("in process: report line → `verify()` returns", in_proc),
        ("whole process: start → first `?stamp` query", starts),
    ]
    body = [
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, Python "
        f"{sys.version.split()[0]}; real pty, `bench/bench_verify.py` "
        f"({options.runs} whole-process runs, {options.inproc_runs} in-process).",
        "",
        "| what | median | p90 | min | max |",
        "|---|---|---|---|---|",
    ]
    for name, samples in rows:
        body.append(
            f"| {name} | {median_ms(samples):.1f} ms | {p90(samples):.1f} ms | "
            f"{min(samples) * 1000:.1f} ms | {max(samples) * 1000:.1f} ms |"
        )
    text = "\n".join(body) + "\n"
    print(text)
    if not options.no_write:
        update_readme_section(
            Path(__file__).resolve().parent / "README.md", "stamp verify latency", text
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
