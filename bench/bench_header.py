"""Benchmark: `stamp header` with nothing changed, in a repository of 2,000 tracked files.

Whole-process medians against the baseline `python3 -c pass` plus `git status --porcelain`
measured in the same run. Target (issue 2): no-op median <= 100 ms and <= 4x baseline.
Run: .venv/bin/python bench/bench_header.py [--runs N] [--no-write]

Before/after a change, in the same run: `--stamp LABEL=SPEC` (twice or more; SPEC is a
venv, a source tree or a git revision, bench/installs.py) times each installation's
`stamp header` in its own copy of the repository, interleaved round by round with the
baseline, and prints each no-op ratio (bench/README.md is not written):

    .venv/bin/python bench/bench_header.py --stamp before=6b78aa6 --stamp after=.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    Job,
    interleaved,
    load,
    machine,
    median_ms,
    ratio_rows,
    time_command,
    update_readme_section,
)
from installs import resolve

FILES = 2000


def make_repo(path: Path) -> None:
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for i in range(FILES):
        sub = path / "src" / f"mod{i % 40:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i:04d}.c").write_text(f"int value_{i} = {i};\n" * 20)
    (path / ".gitignore").write_text("build/\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True, env=env)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "bench"],
        cwd=path,
        check=True,
        env=env,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--no-write", action="store_true", help="do not update bench/README.md")
    parser.add_argument("--stamp", action="append", default=[], metavar="LABEL=SPEC")
    parser.add_argument("--cache", type=Path, help="keep --stamp installations here")
    args = parser.parse_args()
    if args.stamp:
        return compare(args.stamp, args.runs, args.cache)
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        # Measure stamp as users have it: a regular (non-editable) install, bytecode
        # compiled by pip. An editable install adds an import hook to every start-up.
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(root)],
            check=True,
        )
        python = str(venv / "bin" / "python")
        stamp = venv / "bin" / "stamp"
        repo = Path(tmp) / "repo"
        make_repo(repo)
        subprocess.run([str(stamp), "header"], cwd=repo, check=True, capture_output=True)
        rows = {
            "python3 -c pass": time_command([python, "-c", "pass"], cwd=repo, runs=args.runs),
            "git status --porcelain": time_command(
                ["git", "status", "--porcelain"], cwd=repo, runs=args.runs
            ),
            "stamp header (no-op)": time_command([str(stamp), "header"], cwd=repo, runs=args.runs),
        }
        # an edit: each run changes one file, so every run bumps and renders
        target = repo / "src" / "mod00" / "file0000.c"
        bumps = []
        for i in range(max(5, args.runs // 4)):
            target.write_text(f"int changed = {i};\n")
            bumps += time_command([str(stamp), "header"], cwd=repo, runs=1, warm_up=False)
        rows["stamp header (after an edit)"] = bumps
    medians = {name: median_ms(samples) for name, samples in rows.items()}
    baseline = medians["python3 -c pass"] + medians["git status --porcelain"]
    noop = medians["stamp header (no-op)"]
    lines = [
        f"`bench/bench_header.py`: a repository of {FILES:,} tracked files, {args.runs} runs "
        f"each, whole-process medians ({machine()}). stamp is pip-installed (not editable) "
        "into a temporary venv, as users have it; the baseline is measured in the same run.",
        "",
        "| command | median (ms) |",
        "|---|---|",
        *[f"| {name} | {value:.1f} |" for name, value in medians.items()],
        f"| baseline: python3 -c pass + git status | {baseline:.1f} |",
        "",
        f"No-op ratio to baseline: **{noop / baseline:.2f}x** (target <= 4x); "
        f"no-op median **{noop:.1f} ms** (target <= 100 ms).",
        "",
        "The no-op path runs four git processes in parallel (rev-parse, status, describe, log), "
        "reads the state file and hashes the generated files; it imports neither click nor "
        "Jinja2 nor logging, and its records are NamedTuples (importing dataclasses cost about "
        "a fifth of the run on this machine). `tests/cli/test_main_fastpath.py` checks the "
        "imports and that the fast path behaves like the click command.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        update_readme_section(Path(__file__).with_name("README.md"), "stamp header", body)
    return 0


def compare(options: list[str], runs: int, cache: Path | None) -> int:
    """Each installation's no-op and after-an-edit runs, interleaved with one baseline.

    Each installation gets its own copy of the repository (its own edit counter)."""
    with tempfile.TemporaryDirectory() as tmp:
        installs = [resolve(option, cache or Path(tmp) / "installs") for option in options]
        template = Path(tmp) / "repo"
        make_repo(template)
        jobs: dict[str, Job] = {
            "python3 -c pass": (template, [[str(installs[0].python), "-c", "pass"]]),
            "git status --porcelain": (template, [["git", "status", "--porcelain"]]),
        }
        edits: dict[str, Job] = {}
        for install in installs:
            repo = Path(tmp) / f"repo-{install.label}"
            shutil.copytree(template, repo, symlinks=True)
            header = [str(install.stamp), "header"]
            subprocess.run(header, cwd=repo, check=True, capture_output=True)
            jobs[f"{install.label}: stamp header (no-op)"] = (repo, [header])
            edits[f"{install.label}: stamp header (after an edit)"] = (repo, [header])

        def edit(name: str) -> None:  # each run changes a file, so each run bumps and renders
            target = edits[name][0] / "src" / "mod00" / "file0000.c"
            target.write_text(f"int changed = {time.perf_counter_ns()};\n")

        times = interleaved(jobs, runs=runs)
        times.update(interleaved(edits, runs=max(5, runs // 4), warm_up=0, before=edit))
    baseline = statistics.median(times["python3 -c pass"])
    baseline += statistics.median(times["git status --porcelain"])
    print(
        f"`bench/bench_header.py --stamp`: {FILES:,} tracked files, {runs} interleaved rounds "
        f"({machine()}, load average {load()} at the end); baseline = median of "
        f"`python3 -c pass` + median of `git status --porcelain` = {baseline * 1000:.1f} ms.\n"
    )
    print("\n".join(f"- {install.label}: {install.described}" for install in installs))
    print("\n| command | median | p90 | x baseline |  |\n|---|---:|---:|---:|---:|")
    print("\n".join(ratio_rows(times, baseline, {})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
