"""`stamp sim cloud` as users and scripts run it: a process, a first line, SIGTERM."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stamp.cli.app import run
from tests.support import run_stamp
from tests.support.cloud import (
    GIT_A,
    EventRecorder,
    cloud_process,
    no_thread_leaks,
    stamp_image,
    stop_process,
)


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    with no_thread_leaks():
        yield


def test_first_line_is_json_then_it_serves_until_sigterm() -> None:
    with cloud_process("--devices", "2", "--token", "tok-for-tests") as cloud:
        assert cloud.process is not None
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", cloud.api_url)
        assert cloud.token == "tok-for-tests"
        assert [d["name"] for d in cloud.devices] == ["sim_photon_1", "sim_photon_2"]
        response = httpx.get(
            f"{cloud.api_url}/v1/devices", headers={"Authorization": "Bearer tok-for-tests"}
        )
        assert [d["id"] for d in response.json()] == [d["id"] for d in cloud.devices]
        with EventRecorder(cloud):  # an open stream must not hold up the shutdown
            cloud.process.send_signal(signal.SIGTERM)
            out, err = stop_process(cloud.process)
    assert cloud.process.returncode == 0, err
    assert out == ""  # nothing after the first line
    assert "Traceback" not in err


def test_a_random_token_and_reproducible_ids_with_a_seed() -> None:
    with cloud_process("--seed", "42") as first, cloud_process("--seed", "42") as second:
        assert first.devices == second.devices
        assert first.token != second.token
        assert re.fullmatch(r"[0-9a-f]{40}", first.token)


def test_firmware_and_fail_rate_from_the_command_line(tmp_path: Path) -> None:
    image = tmp_path / "app.bin"
    image.write_bytes(stamp_image(42, GIT_A))
    with cloud_process("--firmware", str(image), "--fail-rate", "1", "--seed", "1") as cloud:
        variable = httpx.get(
            f"{cloud.api_url}/v1/devices/{cloud.device_id}/stamp",
            headers={"Authorization": f"Bearer {cloud.token}"},
        )
        with EventRecorder(cloud) as recorder, cloud.client() as client:
            client.flash(cloud.device_id, "new.bin", stamp_image(43, GIT_A))
            events = recorder.wait_for_event("stamp")
        flashes = cloud.flashes()
    assert json.loads(variable.json()["result"])["edit"] == 42
    assert json.loads(events[-1].data)["edit"] == 42  # the flash silently failed
    assert [f["succeeded"] for f in flashes] == [False]


def test_a_firmware_that_is_not_a_module_is_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x7fELF not a module" * 10)
    done = run_stamp("sim", "cloud", "--firmware", str(junk), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "is not a Particle module binary" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_exit_2(tmp_path: Path) -> None:
    with cloud_process() as cloud:
        done = run_stamp("sim", "cloud", "--port", str(cloud.port), cwd=tmp_path)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{cloud.port}" in done.stderr


def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sim", "cloud", "--fail-rate", "1.5"]) == 2
    assert run(["sim", "cloud", "--devices", "-1"]) == 2
    assert "--fail-rate" in capsys.readouterr().err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sim", "cloud", "--help"]) == 0
    assert "stamp sim cloud --port 0" in capsys.readouterr().out


def test_products_speed_and_variations_from_the_command_line() -> None:
    args = ("--devices", "4", "--products", "2", "--seed", "7", "--variations", "field")
    with cloud_process(*args, "--speed", "5") as cloud:
        assert cloud.process is not None
        headers = {"Authorization": f"Bearer {cloud.token}"}
        with httpx.Client(base_url=cloud.api_url, headers=headers) as http:
            pages = [
                http.get(f"/v1/products/{product}/devices", params={"per_page": 1}).json()
                for product in ("10001", "sim-product-2")
            ]
            devices = http.get("/v1/devices").json()
    assert [p["meta"]["total_pages"] for p in pages] == [2, 2]
    assert [p["devices"][0]["product_id"] for p in pages] == [10001, 10002]
    assert [d["product_id"] for d in devices] == [10001, 10002, 10001, 10002]


def test_without_the_sim_extra_it_says_what_to_install(tmp_path: Path) -> None:
    """aiohttp missing (hidden from this interpreter): one line naming the extra, exit 2."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['aiohttp'] = None\n")
    for command in (("sim", "cloud"), ("demo",)):
        done = run_stamp(*command, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            "stamp: error: the simulated Particle Cloud needs aiohttp, which is not "
            "installed: pip install 'stamp-firmware[sim]'\n"
        )
