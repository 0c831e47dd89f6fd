"""Bisecting a set of pytest tests: collect their ids, measure a subset in-process.

A subset's verdict comes from running exactly those tests, regrtest `-R`
style, in one process of the target Python (`harness.repeat`): pytest
collects the subset once, then the whole subset runs `warmup + repeats`
times and the counters are read after each pass.  Why not the C host with
`pytest.main()` in every cycle: pytest itself leaves +1,639 blocks per
Py_FinalizeEx cycle on 3.11.7 (measured), so every subset, even one clean
test, would "leak" against the `pass` control.

This file is also the driver the target runs (`python -m harness.bisect_tests
NODEID ...`); it needs only the standard library, pytest and harness.repeat.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ...errors import CaseError, HarnessError

RESULT_PREFIX = "@@leak-harness-tests@@ "
HARNESS_PARENT = str(Path(__file__).resolve().parents[3])
PYTEST_ARGS = ("-q", "-p", "no:cacheprovider")


def driver_env() -> dict[str, str]:
    """The target finds `harness` (for harness.repeat) ahead of anything else."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (HARNESS_PARENT, env.get("PYTHONPATH", "")) if p)
    return env


def collect_test_ids(python: str, selectors: list[str], timeout_s: float = 300.0) -> list[str]:
    """Node ids pytest collects for `selectors` (paths or node ids), run by the target Python."""
    proc = subprocess.run([python, "-m", "pytest", "--collect-only", *PYTEST_ARGS, *selectors],
                          capture_output=True, text=True, timeout=timeout_s, env=driver_env())
    if "No module named pytest" in proc.stderr:
        raise HarnessError(f"{python} cannot import pytest: install it into that Python "
                           f"({python} -m pip install pytest)")
    ids = [line.strip() for line in proc.stdout.splitlines() if "::" in line and " " not in line.strip()]
    if proc.returncode not in (0, 5) or not ids:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise CaseError(f"pytest collected no tests from {' '.join(selectors)}: " + " | ".join(tail))
    return ids


def run_subset(python: str, node_ids: list[str], warmup: int, repeats: int,
               timeout_s: float) -> dict:
    """{"verdict", "deltas", "per_repeat", "message"} for one subset, measured in a fresh process."""
    argv = [python, "-m", "harness.tools.bisect.by_tests", str(warmup), str(repeats), *node_ids]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=driver_env())
    except subprocess.TimeoutExpired:
        return {"verdict": "timeout", "message": f"no end after {timeout_s:g} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stdout + proc.stderr).strip()[-2000:]
    verdict = "crash" if proc.returncode < 0 else "error"
    return {"verdict": verdict, "message": f"driver exited with status {proc.returncode}\n{tail}"}


# -- the driver, in the target Python -------------------------------------------
class _Repeater:
    """A pytest plugin that replaces the run loop: the collected items, repeated."""

    def __init__(self, warmup: int, repeats: int) -> None:
        self.warmup, self.repeats = warmup, repeats
        self.outcome: dict = {"verdict": "error", "message": "no test ran"}

    def pytest_runtestloop(self, session) -> bool:
        from _pytest.runner import runtestprotocol

        from harness.tools.repeat import RepeatLimits, repeat_check

        items = list(session.items)

        def one_pass() -> None:
            for position, item in enumerate(items):
                following = items[position + 1] if position + 1 < len(items) else None
                # log=False: no reports pile up in the terminal reporter's
                # stats, which would grow every pass like a leak
                for report in runtestprotocol(item, log=False, nextitem=following):
                    if report.failed:
                        raise AssertionError(f"{item.nodeid} failed ({report.when}):\n"
                                             f"{report.longreprtext[-1500:]}")

        if session.testsfailed or not items:
            self.outcome = {"verdict": "error", "message": "collection failed or selected nothing"}
            return True
        try:
            result = repeat_check(one_pass, RepeatLimits(warmup=self.warmup, repeats=self.repeats))
        except AssertionError as exc:
            self.outcome = {"verdict": "error", "message": str(exc)}
            return True
        self.outcome = {"verdict": result.verdict, "deltas": result.deltas,
                        "per_repeat": {k: result.per_repeat(k) for k in result.deltas},
                        "leaked": result.leaked, "message": result.message()}
        return True


def _main(argv: list[str]) -> int:
    import pytest

    warmup, repeats, node_ids = int(argv[0]), int(argv[1]), argv[2:]
    repeater = _Repeater(warmup, repeats)
    pytest.main([*PYTEST_ARGS, *node_ids], plugins=[repeater])
    print(RESULT_PREFIX + json.dumps(repeater.outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
