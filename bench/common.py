"""Shared helpers for the benchmarks: whole-process timing with medians."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

INSTALLED_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""As installed: bytecode cached (PYTHONDONTWRITEBYTECODE would recompile a tree every run)."""

Job = tuple[Path, Sequence[Sequence[str]]]
"""A timed job: its working directory and the commands it runs one after the other."""


def time_command(
    args: Sequence[str],
    *,
    cwd: Path,
    runs: int,
    env: dict[str, str] | None = None,
    warm_up: bool = True,
) -> list[float]:
    """Wall-clock seconds of `runs` whole-process executions (after one warm-up run)."""
    full_env = {**os.environ, **(env or {})}
    if warm_up:
        subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, check=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return samples


def interleaved(
    jobs: Mapping[str, Job],
    *,
    runs: int,
    warm_up: int = 1,
    before: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Wall-clock seconds of each job per round, the jobs interleaved round by round so
    that the machine's drift (other users' work) hits them all alike. `before(name)` runs
    untimed before each job (e.g. an edit for `stamp header` to find)."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for round_ in range(warm_up + runs):
        for name, (cwd, argvs) in jobs.items():
            if before is not None:
                before(name)
            started = time.perf_counter()
            for argv in argvs:
                done = subprocess.run(
                    argv, cwd=cwd, env=INSTALLED_ENV, capture_output=True, check=False
                )
                if done.returncode != 0:
                    raise SystemExit(f"bench: {' '.join(argv)} failed: {done.stderr.decode()}")
            if round_ >= warm_up:
                times[name].append(time.perf_counter() - started)
    return times


def ratio_rows(
    times: Mapping[str, Sequence[float]], baseline: float, floors: Mapping[str, float]
) -> list[str]:
    """Markdown rows: median, p90, ratio to `baseline` and to the job's floor (if it has one)."""
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
        floor = floors.get(name)
        to_floor = f"{median / floor:.2f}" if floor else ""
        rows.append(
            f"| {name} | {median * 1000:.1f} ms | {p90 * 1000:.1f} ms | "
            f"{median / baseline:.2f} | {to_floor} |"
        )
    return rows


def load() -> str:
    """The load average now: how busy the shared machine was."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000.0


def machine() -> str:
    return f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().machine}"


def update_readme_section(readme: Path, heading: str, body: str) -> None:
    """Replace (or append) the `## heading` section of bench/README.md."""
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    marker = f"## {heading}\n"
    start = text.find(marker)
    section = marker + body.rstrip("\n") + "\n"
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(marker))
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    readme.write_text(text)
