"""Two installations of leak-harness on the same sweep, alternated: time ratio and verdict diff.

    python bench/versus.py --before CMD --after CMD [--python PY ...] [--jobs 2]
                           [--rounds 2] [--module NAME ...] [--json] [-- SWEEP_ARGS...]

CMD is how to start one installation's CLI: a `leak-harness` executable,
or a command line such as "/path/venv/bin/python -m harness" (split like a
shell would).  Each round runs `CMD sweep --python PY ... --jobs J --out F`
once for each side, the order alternating (before, after; then after,
before) so that a drift of a shared machine falls on both sides alike.
Wall time is the sweep's; CPU is what the sweep and every host under it
used (RUSAGE_CHILDREN around each run).  The figures are after ÷ before,
the median over rounds, and the verdicts that differ between the two sides'
last runs, keyed by (Python, module, mode): a diff, empty when the two agree.

Why: sweep_time.py measures one tree against its own floor and its own
`--fixed-cycles`; it cannot say what a user of an older release gains by
upgrading.  This does, on one machine in one sitting: make the older tree
an installation of its own, e.g.

    git worktree add /tmp/old REV && python3 -m venv /tmp/oldv \\
        && /tmp/oldv/bin/pip install -e /tmp/old
    python bench/versus.py --before /tmp/oldv/bin/leak-harness \\
        --after .venv/bin/leak-harness --python 3.12 --python 3.13 --json

A benchmark, not a test: it exits 0 when both sides ran, 2 (one line) when
a side cannot be started or writes no results.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import children_cpu_s  # noqa: E402

SIDES = ("before", "after")


class SideError(Exception):
    """A side that cannot be run: the one line the user sees."""


def command_of(text: str, side: str) -> list[str]:
    """The side's command line, its program checked before any run (a typo
    should cost a second, not a first sweep)."""
    words = shlex.split(text)
    if not words:
        raise SideError(f"--{side} is empty")
    program = words[0]
    found = shutil.which(program) if os.sep not in program else (
        program if os.access(program, os.X_OK) and Path(program).is_file() else None)
    if not found:
        raise SideError(f"--{side}: no such executable: {program}")
    return words


def verdicts(rows: list[dict]) -> dict[tuple[str, str, str], str]:
    """(Python version, module, mode) -> verdict, the case rows only (a
    control row has role "control"; rows from before roles existed have none)."""
    out = {}
    for row in rows:
        if row.get("role", "case") != "case":
            continue
        python = row.get("python")
        version = python.get("version") if isinstance(python, dict) else str(python)
        out[(version, row.get("module") or row.get("case"), row.get("mode"))] = row.get("verdict")
    return out


def run_side(command: list[str], side: str, sweep_args: list[str]) -> dict:
    """One sweep of one side: wall and CPU seconds, its result rows."""
    with tempfile.TemporaryDirectory(prefix=f"lh-versus-{side}-") as tmp:
        out = Path(tmp, "results.jsonl")
        before_cpu, start = children_cpu_s(), time.perf_counter()
        proc = subprocess.run([*command, "sweep", *sweep_args, "--out", str(out)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, errors="replace")
        wall_s, cpu_s = time.perf_counter() - start, children_cpu_s() - before_cpu
        rows = []
        if out.exists():
            for line in out.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
    if not rows:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SideError(f"--{side} wrote no results (exit {proc.returncode}): {last}")
    return {"wall_s": wall_s, "cpu_s": cpu_s, "rows": rows}


def compare(commands: dict[str, list[str]], sweep_args: list[str], rounds: int) -> dict:
    """Alternate the sides `rounds` times; ratios after ÷ before, per round and median."""
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for r in range(rounds):
        for side in SIDES if r % 2 == 0 else SIDES[::-1]:
            runs[side].append(run_side(commands[side], side, sweep_args))
    wall = [a["wall_s"] / b["wall_s"] for a, b in zip(runs["after"], runs["before"])]
    cpu = [a["cpu_s"] / b["cpu_s"] for a, b in zip(runs["after"], runs["before"])]
    old, new = verdicts(runs["before"][-1]["rows"]), verdicts(runs["after"][-1]["rows"])
    diff = [{"python": k[0], "module": k[1], "mode": k[2], "before": old.get(k), "after": new.get(k)}
            for k in sorted(set(old) | set(new), key=lambda k: tuple(map(str, k)))
            if old.get(k) != new.get(k)]
    return {
        "rounds": rounds,
        "sweep_args": sweep_args,
        **{side: {"command": commands[side],
                  "wall_s": [round(x["wall_s"], 2) for x in runs[side]],
                  "cpu_s": [round(x["cpu_s"], 2) for x in runs[side]],
                  "results": len(runs[side][-1]["rows"])} for side in SIDES},
        "wall_ratio": round(statistics.median(wall), 3),
        "wall_ratio_rounds": [round(x, 3) for x in wall],
        "cpu_ratio": round(statistics.median(cpu), 3),
        "cpu_ratio_rounds": [round(x, 3) for x in cpu],
        "verdicts_compared": len(set(old) & set(new)),
        "verdict_diff": diff,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def print_figures(figures: dict) -> None:
    print(f"after / before, median of {figures['rounds']} alternated rounds: "
          f"wall {figures['wall_ratio']:.3f}x (rounds {figures['wall_ratio_rounds']}), "
          f"CPU {figures['cpu_ratio']:.3f}x (rounds {figures['cpu_ratio_rounds']})")
    for side in SIDES:
        print(f"  {side:<6} {' '.join(figures[side]['command'])}: wall {figures[side]['wall_s']} s, "
              f"CPU {figures[side]['cpu_s']} s, {figures[side]['results']} results")
    diff = figures["verdict_diff"]
    print(f"verdicts compared: {figures['verdicts_compared']}; differing: {len(diff)}")
    for d in diff:
        print(f"  {d['python']} {d['module']} {d['mode']}: {d['before']} -> {d['after']}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, metavar="CMD", help="the older installation's CLI")
    parser.add_argument("--after", required=True, metavar="CMD", help="the newer installation's CLI")
    parser.add_argument("--python", action="append", default=[], help="target (repeatable)")
    parser.add_argument("--module", action="append", default=[], help="only these modules")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sweep_args = [a for p in args.python for a in ("--python", p)]
    sweep_args += [a for m in args.module for a in ("--module", m)]
    sweep_args += ["--jobs", str(args.jobs), *extra]
    try:
        commands = {side: command_of(getattr(args, side), side) for side in SIDES}
        figures = compare(commands, sweep_args, args.rounds)
    except SideError as exc:
        print(f"versus.py: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
