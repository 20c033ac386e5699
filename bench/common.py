"""Shared helpers for the benchmarks: whole-process timing with medians."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


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
