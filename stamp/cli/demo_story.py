"""`stamp demo`: the whole loop on a simulated Particle Photon (SPEC section 8).

No board, no compiler, no network beyond loopback: in a throw-away directory it makes a
small project with its own git repository, stamps it (`run_header`), builds a firmware
image in Python (a valid Particle user-part module holding the stamp record, as the
compiled firmware would), records its manifest (the same steps as `stamp manifest`),
and flashes it through a simulated cloud whose OTA updates fail the way SPEC section 1
describes, with `stamp flash`'s own core. Then a second build does not reach the device,
and `stamp verify` names the build the device still runs.

The simulator's seed is fixed, so the story is the same every time: the first OTA update
fails, the second succeeds, the third fails. Everything it starts it stops, and the
directory is removed, also on Ctrl-C (unless `keep`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from stamp.artifact.manifest import Manifest
from stamp.artifact.particle.build import build_user_part
from stamp.cli.header_print import describe_result
from stamp.cli.manifest import manifest_facts
from stamp.cli.terminal import Progress, paint
from stamp.cli.verdict_words import attempt_summary, painted_verdict
from stamp.config import Config, load_config
from stamp.device.verify import Verdict, VerdictStatus
from stamp.errors import EXIT_INTERNAL, EXIT_OK, StampError
from stamp.header.run import HeaderResult, run_header
from stamp.record import StampRecord

if TYPE_CHECKING:
    from stamp.artifact.history import History
    from stamp.sim.cloud import CloudSim

DEMO_SEED = 12
"""With DEMO_FAIL_RATE, the simulator's OTA updates fail, succeed, fail (in that order)."""
DEMO_FAIL_RATE = 0.5
DEVICE = "photon"
"""The project's name for the simulated device, as in `--device photon`."""
RETRIES = 2
TIMEOUT = 15.0
"""Seconds one verification may take; the simulated device answers in well under one."""
SETTLE = 1.0
"""The simulated device publishes its app hash within milliseconds of reconnecting."""
SETTLED_WAIT = 10.0
"""Seconds to let an unchecked OTA update play out before `stamp verify` looks."""
PROJECT = "photon-app"
FIRMWARE = Path("build/firmware.bin")

MAIN_C = """\
// A Particle app that says which build it is: once after each boot, and on request.
#include "Particle.h"
#include "stamp.h"

static char identity[160];

void setup() {
    stamp_json(identity, sizeof identity);
    Particle.variable("stamp", identity);
    Particle.publish("stamp", identity, PRIVATE);
}

static const int BLINK_MS = 500;

void loop() {
    digitalWrite(D7, HIGH);
    delay(BLINK_MS);
    digitalWrite(D7, LOW);
    delay(BLINK_MS);
}
"""
EDITED = ("BLINK_MS = 500;", "BLINK_MS = 250;")

STAMP_TOML = """\
# stamp's settings for this project: the simulated cloud and its device.
api_url = "{api_url}"

[devices.{device}]
particle = "{name}"
"""

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "stamp demo",
    "GIT_AUTHOR_EMAIL": "demo@stamp.invalid",
    "GIT_COMMITTER_NAME": "stamp demo",
    "GIT_COMMITTER_EMAIL": "demo@stamp.invalid",
    # The user's git configuration (hooks, signing, templates) stays out of the demo.
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class DemoFailed(StampError):
    """A step of the demo did not behave as designed (a bug in stamp: please report it)."""

    exit_code = EXIT_INTERNAL


def run_demo(out: TextIO, *, keep: bool = False, parent: Path | None = None) -> int:
    """Run the demo, narrated on `out`; returns 0 when every step behaved as designed,
    and raises DemoFailed (exit 70, an internal error) naming the step that did not.

    `parent` is where the throw-away directory is made (default: the system's temp
    directory); `keep` leaves it there and says where.
    """
    if shutil.which("git") is None:
        raise StampError("stamp demo needs git: install it (e.g. apt-get install git)")
    base = Path(tempfile.mkdtemp(prefix="stamp-demo-", dir=parent))
    try:
        _Demo(base, out).run()
    finally:
        if keep:
            out.write(f"\nThe demo project is kept in {base / PROJECT}\n")
        else:
            shutil.rmtree(base, ignore_errors=True)
        out.flush()
    return EXIT_OK


def build_image(source: bytes, header: HeaderResult) -> bytes:
    """The firmware a build of `source` makes, as far as stamp can tell: a Photon user-part
    module whose bytes hold the stamp record of `header` (and the source, standing in for
    the code), with a correct SHA-256 (the app hash) and CRC."""
    record = StampRecord(edit=header.edit, git=header.git, dirty=header.dirty).pack()
    return build_user_part(record + source)


class _Demo:
    """The steps, in order, with the narration around them."""

    def __init__(self, base: Path, out: TextIO) -> None:
        self.base = base
        self.out = out
        self.project = base / PROJECT
        self.progress = Progress(out)

    # -- narration -------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, number: int, title: str, *lines: str) -> None:
        self.say()
        self.say(paint(f"{number}. {title}", "cyan", self.out, bold=True))
        for line in lines:
            self.say(f"   {line}")

    def command(self, text: str) -> None:
        self.say(paint(f"$ {text}", "blue", self.out))

    def verdict(self, verdict: Verdict) -> None:
        self.say(painted_verdict(verdict, self.out))

    # -- the story -------------------------------------------------------------------

    def run(self) -> None:
        from stamp.sim import require_sim_extra
        from stamp.sim.cloud import CloudSim, SimTiming

        require_sim_extra()
        from stamp.sim.cloud_http import CloudServer

        self.say(
            paint("stamp demo", "cyan", self.out, bold=True)
            + ": the whole loop on a simulated Particle Photon (no board, compiler or network)"
        )
        sim = CloudSim(fail_rate=DEMO_FAIL_RATE, seed=DEMO_SEED, timing=SimTiming())
        with CloudServer(sim) as server:
            config = self._make_project(server.api_url, sim.devices[0].name)
            env = {"PARTICLE_ACCESS_TOKEN": sim.token}
            first = self._first_build(config)
            self._flash_with_retries(config, env)
            second = self._a_build_that_does_not_arrive(config, env, sim)
            self._verify_catches_it(config, env, first, second)
        self.say()
        self.say("Done: the failed OTA update was caught and flashed again, and the device")
        self.say("that missed an update was named. In your own project: `stamp header` before")
        self.say("each build, `stamp manifest` after it, then `stamp flash` or `stamp verify`.")

    def _make_project(self, api_url: str, device_name: str) -> Config:
        self.project.mkdir()
        (self.project / "main.c").write_text(MAIN_C)
        (self.project / ".gitignore").write_text("build/\n")
        (self.project / "stamp.toml").write_text(
            STAMP_TOML.format(api_url=api_url, device=DEVICE, name=device_name)
        )
        self._git("init", "-q")
        self._commit("A Particle app")
        return load_config(self.project / "stamp.toml")

    def _first_build(self, config: Config) -> Manifest:
        self.step(
            1,
            f"A firmware project in a new git repository ({self.project})",
            "Before each build, `stamp header` counts the edit and renders stamp.c/stamp.h.",
        )
        header = self._header(config)
        self.step(
            2,
            "The build, and what was really built",
            "A Particle module with the stamp record compiled in (made in Python here, so",
            "no compiler is needed), then `stamp manifest` reads its identity back.",
        )
        return self._build(config, header)

    def _flash_with_retries(self, config: Config, env: dict[str, str]) -> None:
        from stamp.cli.watch import FlashProgress
        from stamp.device.flash import flash_and_verify
        from stamp.device.flash_image import load_flash_image
        from stamp.device.flashers import make_flasher
        from stamp.device.target import parse_device

        self.step(
            3,
            "Flash over the air, through a simulated Particle Cloud",
            "Its OTA updates fail half the time the way real ones do: the cloud says",
            '"success", the device restarts on its old firmware and publishes no new app hash.',
        )
        self.command(f"stamp flash --device {DEVICE} --retries {RETRIES} {FIRMWARE}")
        image = load_flash_image(self.project / FIRMWARE)
        image = replace(image, path=FIRMWARE)  # shown as the user would type it
        target = parse_device(DEVICE, config)
        with (
            self._history(config) as history,
            make_flasher(target, config, env, self.base) as flasher,
        ):
            flasher.prepare(image)
            result = flash_and_verify(
                flasher,
                image,
                history,
                retries=RETRIES,
                timeout=TIMEOUT,
                settle=SETTLE,
                watcher=FlashProgress(
                    self.progress,
                    TIMEOUT,
                    image,
                    flasher,
                    lines=True,
                    verbose=False,
                ),
            )
        if result.verdict is not None:
            self.verdict(result.verdict)
        if result.verdict is None or result.verdict.status is not VerdictStatus.VERIFIED:
            raise DemoFailed(
                f"the flash should have been verified: {attempt_summary(result.final)}"
            )
        if len(result.attempts) < 2:
            raise DemoFailed("the first OTA update should have failed and been retried")

    def _a_build_that_does_not_arrive(
        self, config: Config, env: dict[str, str], sim: CloudSim
    ) -> Manifest:
        from stamp.device.transport.cloud_api import CloudClient

        self.step(
            4,
            "Change the code, build again, and flash without checking",
            "main.c now blinks faster: a new edit. The next OTA update fails too, but",
            '`particle flash` only uploads (and would print "Flash success!"):',
        )
        main_c = self.project / "main.c"
        main_c.write_text(main_c.read_text().replace(*EDITED))
        self._commit("Blink faster")
        header = self._header(config)
        manifest = self._build(config, header)
        self.command(f"particle flash {DEVICE} {FIRMWARE}")
        assert config.api_url is not None
        with CloudClient(config.api_url, env["PARTICLE_ACCESS_TOKEN"]) as client:
            device = client.resolve(sim.devices[0].name)
            answer = client.flash(device.id, FIRMWARE.name, (self.project / FIRMWARE).read_bytes())
        self.say(f"the cloud: {answer}")
        deadline = time.monotonic() + SETTLED_WAIT
        while not sim.settled() and time.monotonic() < deadline:
            time.sleep(0.05)  # the device restarts (on its old firmware)
        return manifest

    def _verify_catches_it(
        self, config: Config, env: dict[str, str], first: Manifest, second: Manifest
    ) -> None:
        from stamp.device.target import open_transport, parse_device
        from stamp.device.verify import verify

        self.step(
            5,
            "Is the device running the new build?",
            "`stamp verify` asks the device, and names the build it really runs.",
        )
        self.command(f"stamp verify --device {DEVICE}")
        target = parse_device(DEVICE, config)
        with (
            self._history(config) as history,
            open_transport(target, config, env, self.base) as transport,
        ):
            verdict = verify(transport, second, history, timeout=TIMEOUT)
        self.verdict(verdict)
        if verdict.status is not VerdictStatus.MISMATCH or verdict.matched_build is None:
            raise DemoFailed(f"stamp verify should have named edit {first.identity.edit}")
        if verdict.matched_build.identity.edit != first.identity.edit:
            raise DemoFailed(f"stamp verify named edit {verdict.matched_build.identity.edit}")
        running, flashed = first.identity.edit, second.identity.edit
        self.say(
            f"(exit status 1: the device still runs edit {running}, not edit {flashed}; "
            "a Makefile or CI job stops here)"
        )

    # -- the tools, as the commands use them ---------------------------------------------

    def _header(self, config: Config) -> HeaderResult:
        self.command("stamp header")
        result = run_header(config)
        self.say(describe_result(result, cwd=self.project))
        return result

    def _build(self, config: Config, header: HeaderResult) -> Manifest:
        from stamp.artifact.recording import record_build

        source = (self.project / "main.c").read_bytes()
        firmware = self.project / FIRMWARE
        firmware.parent.mkdir(parents=True, exist_ok=True)
        firmware.write_bytes(build_image(source, header))
        self.command(f"stamp manifest {FIRMWARE}")
        recorded = record_build(firmware, config)
        shown = recorded.path.relative_to(self.project)
        self.say(f"stamp: manifest {shown} ({manifest_facts(recorded.manifest)})")
        return recorded.manifest

    def _history(self, config: Config) -> History:
        """The project's build history (the caller closes it)."""
        from stamp.artifact.history import History
        from stamp.state_dir import find_state_dir

        return History.open(find_state_dir(config))

    def _git(self, *args: str) -> None:
        from stamp.proc import run

        done = run(["git", *args], cwd=self.project, env=_GIT_ENV)
        if done.returncode != 0:
            raise StampError(f"git {args[0]} failed in the demo project: {done.stderr.strip()}")

    def _commit(self, message: str) -> None:
        self._git("add", "-A")
        self._git("commit", "-q", "-m", message)
