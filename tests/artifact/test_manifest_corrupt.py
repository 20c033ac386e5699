"""Corrupt manifests given to `stamp verify`: exit 2 naming the field, never a traceback
(issue 10 item 8); arbitrary JSON gives nothing but a StampError (Hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stamp.artifact.manifest import Manifest, load_manifest
from stamp.errors import ArtifactError, StampError
from tests.support import GitRepo, run_stamp
from tests.support.verify import make_build

SHA = "ab" * 32


def _good() -> dict[str, Any]:
    return {
        "schema": 1,
        "edit": 7,
        "git": "a" * 40,
        "dirty": False,
        "build_id": None,
        "app_hash": SHA,
        "image_sha256": SHA,
        "recorded_at": "2026-01-01T00:00:00Z",
        "artifacts": {"elf": None, "bin": {"path": "app.bin", "sha256": SHA, "size": 600}},
        "particle": None,
    }


def _with(path: str, value: Any) -> str:
    record = _good()
    *parents, last = path.split(".")
    target = record
    for name in parents:
        target = target[name]
    target[last] = value
    return json.dumps(record)


def _raw(path: str, raw: str) -> str:
    """The good manifest with one field's JSON text replaced by `raw` (invalid Python)."""
    marker = "__RAW__"
    return _with(path, marker).replace(f'"{marker}"', raw)


# name -> (file content, the field the message names)
CASES: dict[str, tuple[str, str]] = {
    "artifacts.elf = {}": (_with("artifacts.elf", {}), "artifacts.elf.path"),
    "size 1e400": (_raw("artifacts.bin.size", "1e400"), "artifacts.bin.size"),
    "size 5,000 digits": (_raw("artifacts.bin.size", "9" * 5000), "number of thousands"),
    "size -1": (_with("artifacts.bin.size", -1), "artifacts.bin.size"),
    "size true": (_with("artifacts.bin.size", True), "artifacts.bin.size"),
    "sha256 short": (_with("artifacts.bin.sha256", "ab"), "artifacts.bin.sha256"),
    "artifacts a list": (_with("artifacts", [1]), "artifacts"),
    "100,000-deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "git zz": (_with("git", "zz"), "git"),
    "git short": (_with("git", "abc"), "git"),
    "edit -1": (_with("edit", -1), "edit"),
    "edit 2**32": (_with("edit", 2**32), "edit"),
    "edit 1.5": (_with("edit", 1.5), "edit"),
    "schema true": (_with("schema", True), "schema"),
    "schema 2": (_with("schema", 2), "schema"),
    "dirty 0": (_with("dirty", 0), "dirty"),
    "app_hash number": (_with("app_hash", 5), "app_hash"),
    "build_id odd": (_with("build_id", "abc"), "build_id"),
    "recorded_at 5": (_with("recorded_at", 5), "recorded_at"),
    "particle a string": (_with("particle", "x"), "particle"),
    "not an object": ("[1, 2]", "top level"),
    "not UTF-8": ('{"schema": 1, "x": "\xff"}', "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_corrupt_manifest_names_the_field(tmp_path: Path, case: str) -> None:
    content, field = CASES[case]
    path = tmp_path / "app.stamp.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(ArtifactError) as caught:
        load_manifest(path)
    message = caught.value.message
    assert field in message and str(path) in message, message
    assert "set_int_max_str_digits" not in message and "\n" not in message


@pytest.mark.parametrize("case", ["artifacts.elf = {}", "size 5,000 digits", "100,000-deep"])
def test_verify_with_a_corrupt_manifest_is_exit_2(repo: GitRepo, case: str) -> None:
    content, field = CASES[case]
    path = repo.path / "app.stamp.json"
    path.write_text(content)
    done = run_stamp(
        "verify", "--device", "serial:/dev/null-none", "--manifest", str(path), cwd=repo.path
    )
    assert done.returncode == 2, done.stderr
    assert field in done.stderr and "Traceback" not in done.stderr


def test_a_real_manifest_still_loads(tmp_path: Path) -> None:
    build = make_build(tmp_path, 7, "a" * 40)
    assert load_manifest(build.manifest_path).identity.edit == 7
    assert Manifest.from_json(json.loads(_with("edit", 8)), "m").identity.edit == 8


# -- arbitrary JSON ------------------------------------------------------------------------

_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from([*_good(), "elf", "bin", "path", "sha256", "size", "memory"])
            | st.text(max_size=8),
            inner,
            max_size=6,
        )
    ),
    max_leaves=25,
)
TMP_PATH_REUSED = HealthCheck.function_scoped_fixture
"""Each example overwrites the same file in tmp_path: sharing it is intended."""


@settings(max_examples=400, deadline=None, suppress_health_check=[TMP_PATH_REUSED])
@given(document=_JSON)
def test_arbitrary_json_gives_only_stamp_errors(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "m.stamp.json"
    path.write_text(json.dumps(document))
    try:
        load_manifest(path)
    except StampError as exc:
        assert exc.exit_code == 2 and str(path) in exc.message


@settings(max_examples=300, deadline=None, suppress_health_check=[TMP_PATH_REUSED])
@given(field=st.sampled_from(sorted(_good())), value=_JSON)
def test_one_arbitrary_field_gives_only_stamp_errors(
    tmp_path: Path, field: str, value: Any
) -> None:
    """Mostly-valid manifests, one field arbitrary: the validator's every branch."""
    try:
        Manifest.from_json(json.loads(_with(field, value)), "m.stamp.json")
    except StampError as exc:
        assert exc.exit_code == 2 and "m.stamp.json" in exc.message
