"""The simulated Particle Cloud for tests: in-process or as a `stamp sim cloud` process.

Both context managers yield a `RunningCloud` and always stop what they started (threads,
sockets, the child process), whatever the test does:

    with cloud_sim(firmware=stamp_image(109, GIT_A)) as cloud:      # a thread, fast timing
        env = cloud.env(home=tmp_path)       # PARTICLE_API_URL, PARTICLE_ACCESS_TOKEN, HOME
        cloud.sim.publish(cloud.device_id, "stamp", "{...}")        # in-process only

    with cloud_process("--fail-rate", "1", "--seed", "3") as cloud:  # python -m stamp sim cloud
        cloud.drop_streams()                 # admin endpoints work for both kinds

`EventRecorder` reads an event stream over real HTTP with plain httpx (not stamp's client)
and lets a test wait for the events it expects.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stamp.artifact.particle.build import build_user_part
from stamp.device.transport.cloud_api import CloudClient
from stamp.record import StampRecord
from stamp.sim.cloud import CloudSim, SimTiming, Variation
from stamp.sim.cloud_http import CloudServer
from tests.support import REPO_ROOT, git_env

FAST = SimTiming(transfer=0.02, restart=0.01, boot=0.05, step=0.005, unanswered=0.2)
"""An OTA update in about 0.1 s."""
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

GIT_A = "1a2b3c4d5e6f" + "0" * 28
GIT_B = "9f8e7d6c5b4a" + "1" * 28


def stamp_image(edit: int, git: str = GIT_A, *, dirty: bool = False, filler: bytes = b"") -> bytes:
    """A valid Particle user-part module carrying this stamp record (Photon, platform 6)."""
    record = StampRecord(edit=edit, git=git, dirty=dirty).pack()
    return build_user_part(b"\x00" * 32 + record + filler)


def report_json(edit: int, git: str = GIT_A, *, dirty: bool = False) -> str:
    """The `stamp` event data the simulator publishes for stamp_image(edit, git, dirty)."""
    return json.dumps({"edit": edit, "git": git, "dirty": dirty}, separators=(",", ":"))


@dataclass
class RunningCloud:
    """A simulated cloud that is up: where it is, its token, its devices."""

    api_url: str
    """e.g. http://127.0.0.1:41234."""
    token: str
    """The access token it accepts."""
    devices: list[dict[str, str]]
    """[{"id": ..., "name": ...}] in order."""
    sim: CloudSim | None = None
    """The simulator object (in-process clouds only)."""
    process: subprocess.Popen[str] | None = None
    """The `stamp sim cloud` child (process clouds only)."""
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def device_id(self) -> str:
        return self.devices[0]["id"]

    @property
    def device_name(self) -> str:
        return self.devices[0]["name"]

    @property
    def port(self) -> int:
        return int(self.api_url.rsplit(":", 1)[1])

    def env(self, home: Path | None = None) -> dict[str, str]:
        """Environment for a stamp process talking to this cloud."""
        env = {"PARTICLE_API_URL": self.api_url, "PARTICLE_ACCESS_TOKEN": self.token}
        if home is not None:
            env["HOME"] = str(home)
        return env

    def client(self, **kwargs: Any) -> CloudClient:
        """A stamp CloudClient for this cloud (close it, or use it as a context manager)."""
        return CloudClient(self.api_url, self.token, **kwargs)

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call a `/_sim/...` control endpoint; returns its JSON."""
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.api_url, headers={"Authorization": f"Bearer {self.token}"}
            )
        response = self._http.request(method, f"/_sim/{path}", json=body)
        response.raise_for_status()
        return response.json()

    def drop_streams(self) -> int:
        """Cut every open event stream mid-way; returns how many were cut."""
        return int(self.admin("POST", "streams/drop")["dropped"])

    def publish(self, name: str, data: str, *, device: str | None = None, count: int = 1) -> None:
        """Publish `count` events (from `device`, else round-robin over all devices)."""
        self.admin(
            "POST", "publish", {"name": name, "data": data, "device": device, "count": count}
        )

    def flashes(self) -> list[dict[str, Any]]:
        """The OTA updates it accepted: device_id, app_hash, succeeded, at."""
        result: list[dict[str, Any]] = self.admin("GET", "flashes")
        return result

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


@contextmanager
def cloud_sim(
    *,
    devices: int = 1,
    fail_rate: float = 0.0,
    seed: int | None = 1,
    firmware: bytes | None = None,
    timing: SimTiming = FAST,
    keepalive: float = 9.0,
    token: str | None = None,
    wall_clock: Callable[[], float] = time.time,
    variation: Variation = Variation.CLASSIC,
    products: int = 0,
    other_token: str | None = None,
    functions: tuple[str, ...] = (),
) -> Iterator[RunningCloud]:
    """A simulated cloud served from a thread of this process, on 127.0.0.1 port 0.

    Its OTA updates play the idealised CLASSIC story unless `variation` says otherwise.
    """
    sim = CloudSim(
        devices=devices,
        token=token,
        fail_rate=fail_rate,
        seed=seed,
        firmware=firmware,
        timing=timing,
        wall_clock=wall_clock,
        variation=variation,
        products=products,
        other_token=other_token,
        functions=functions,
    )
    server = CloudServer(sim, keepalive=keepalive)
    running = RunningCloud(
        api_url=server.api_url,
        token=sim.token,
        devices=[{"id": d.id, "name": d.name} for d in sim.devices],
        sim=sim,
    )
    try:
        server.start()
        yield running
    finally:
        running.close()
        server.close()


@contextmanager
def cloud_process(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[RunningCloud]:
    """`python -m stamp sim cloud --port 0 ARGS` as a child process, read its first line.

    On exit the child gets SIGTERM (then SIGKILL if it lingers) and its pipes are closed;
    `cloud.process.returncode` is then its exit status.
    """
    full_env = {**git_env(), "NO_COLOR": "1", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stamp", "sim", "cloud", "--port", "0", *args],
        cwd=cwd or REPO_ROOT,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running: RunningCloud | None = None
    try:
        line = _first_line(proc)
        hello = json.loads(line)
        running = RunningCloud(
            api_url=hello["api_url"], token=hello["token"], devices=hello["devices"], process=proc
        )
        yield running
    finally:
        if running is not None:
            running.close()
        stop_process(proc)


def stop_process(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, wait, SIGKILL if needed; returns the rest of (stdout, stderr). Idempotent."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    except ValueError:  # already communicated: the pipes are closed
        out, err = "", ""
    return out or "", err or ""


def _first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line:
                return line
            break  # EOF: it exited
        if proc.poll() is not None:
            break
    _, err = stop_process(proc)
    raise AssertionError(f"`stamp sim cloud` printed no first line; stderr:\n{err}")


@contextmanager
def no_thread_leaks(grace: float = 5.0) -> Iterator[None]:
    """Fail if threads started inside the block are still running `grace` s after it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + grace
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"threads left running: {[t.name for t in left]}")
        time.sleep(0.01)


@dataclass(frozen=True)
class Received:
    """One event as it came over the wire."""

    name: str
    """The `event:` field."""
    data: str
    """The envelope's `data`."""
    envelope: dict[str, Any]
    """The whole decoded `data:` JSON (data, ttl, published_at, coreid)."""


class EventRecorder:
    """Records an SSE stream of a cloud in a thread, using plain httpx line reading."""

    def __init__(self, cloud: RunningCloud, path: str = "/v1/devices/events") -> None:
        self._url = cloud.api_url + path
        self._token = cloud.token
        self.events: list[Received] = []
        self.comments: list[str] = []
        self._cond = threading.Condition()
        self._connected = False
        self._done = False
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EventRecorder:
        self._thread.start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._connected or self._done, START_TIMEOUT):
                raise AssertionError("event stream did not connect")
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._done = True
            sock = self._socket
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(STOP_TIMEOUT)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        """The events so far once `predicate(events)` holds; AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.events), timeout):
                names = [(e.name, e.data) for e in self.events]
                raise AssertionError(f"timed out; events so far: {names}")
            return list(self.events)

    def wait_for_event(self, name: str, timeout: float = 20.0) -> list[Received]:
        """The events so far once one named `name` arrived."""
        return self.wait_for(lambda events: any(e.name == name for e in events), timeout)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        event_name = ""
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as http,
                http.stream("GET", self._url, headers=headers) as response,
            ):
                stream = response.extensions["network_stream"]
                with self._cond:
                    self._socket = stream.get_extra_info("socket")
                    self._connected = response.status_code == 200
                    self._cond.notify_all()
                    if self._done or not self._connected:
                        return
                for line in response.iter_lines():
                    with self._cond:
                        if line.startswith(":"):
                            self.comments.append(line)
                        elif line.startswith("event: "):
                            event_name = line[len("event: ") :]
                        elif line.startswith("data: "):
                            envelope = json.loads(line[len("data: ") :])
                            self.events.append(Received(event_name, envelope["data"], envelope))
                        self._cond.notify_all()
        except httpx.HTTPError:
            pass  # shut down by __exit__, or the cloud went away
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()
