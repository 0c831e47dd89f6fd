"""The detection floor: the smallest leak per cycle the default verdict flags beside a big import.

    python bench/detection_floor.py [--python PY ...] [--neighbour json --neighbour asyncio]
                                    [--mode subinterpreter ...] [--cycles N] [--warmup W] [--json]

A real leak of a chosen size (tests/fixtures/ext/tunable.c, built here for
each target) is imported next to a module that keeps much by design
(`import json`: ~1,100-1,800 immortal interned strings a cycle on 3.12/3.13;
`import asyncio`: ~10,000), with the default `pass` control, counters
backend.  For each kind — objects (blocks), a PyMem_Malloc(n) block
(bytes), a malloc(n) block (native bytes) — the size doubles from the
smallest until the verdict is `leak` on that kind's metric; its clean twin
at the same size must stay `clean` (otherwise the figure is noise, and says
so).  Goal (issue 11): <= 1 block and <= 256 bytes a cycle.  A benchmark,
not a test: it prints and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import release_pythons  # noqa: E402
from fixtures.build import build_fixtures  # noqa: E402
from harness.cases.model import Case  # noqa: E402
from harness.engine import Engine  # noqa: E402
from harness.host.modes import mode_problem  # noqa: E402
from harness.host.target import target_python  # noqa: E402
from harness.settings import RunSettings  # noqa: E402

#: kind -> (fixture function, judged metric, sizes tried in order, unit)
KINDS = {
    # objects(k) leaks a list and its k ints: k + 1 blocks
    "blocks": ("objects", "blocks", [0, 1, 3, 7, 15], lambda k: k + 1),
    "bytes": ("pymem", "bytes", [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768],
              lambda n: n),
    "native_bytes": ("native", "native_bytes", [16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
                     lambda n: n),
}


def measure(engine: Engine, settings: RunSettings, neighbour: str, module: str, function: str,
            size: int):
    code = f"import {neighbour}\nimport {module}\n{module}.{function}({size})\n"
    return engine.run(Case(name=f"{neighbour}+{module}.{function}({size})", code=code, module=module),
                      settings)


def floor(engine: Engine, settings: RunSettings, neighbour: str, kind: str) -> dict:
    function, metric, sizes, leaked = KINDS[kind]
    for size in sizes:
        result = measure(engine, settings, neighbour, "lh_tunableleak", function, size)
        if result.verdict == "leak" and metric in (result.evidence.get("triggered_by") or []):
            twin = measure(engine, settings, neighbour, "lh_tunableclean", function, size)
            return {"kind": kind, "leak_per_cycle": leaked(size), "metric": metric,
                    "excess": (result.excess or {}).get(metric),
                    "tolerance": result.tolerance.get(metric), "twin_verdict": twin.verdict,
                    "trustworthy": twin.verdict == "clean"}
        if result.verdict not in ("leak", "clean"):
            return {"kind": kind, "problem": f"{result.verdict}: {(result.message or '')[:200]}"}
    return {"kind": kind, "leak_per_cycle": None, "metric": metric,
            "note": f"not flagged up to {leaked(sizes[-1])} a cycle"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", default=[])
    parser.add_argument("--neighbour", action="append", default=[])
    parser.add_argument("--mode", action="append", default=[])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    pythons = args.python or release_pythons()
    neighbours = args.neighbour or ["json", "asyncio"]
    modes = args.mode or ["finalize", "subinterpreter"]
    rows = []
    engine = Engine()
    with tempfile.TemporaryDirectory(prefix="lh-floor-") as tmp:
        for python in pythons:
            target = target_python(python)
            built = build_fixtures(target, Path(tmp) / target.label)
            for mode in modes:
                if mode_problem(mode, target):
                    continue
                settings = RunSettings(python=target.executable, mode=mode, cycles=args.cycles,
                                       warmup=args.warmup, pythonpath=(str(built),))
                for neighbour in neighbours:
                    for kind in KINDS:
                        row = {"python": target.label, "mode": mode, "neighbour": neighbour,
                               **floor(engine, settings, neighbour, kind)}
                        rows.append(row)
                        if not args.json:
                            print(_line(row), flush=True)
    if args.json:
        print(json.dumps({"benchmark": "detection_floor", "cycles": args.cycles,
                          "warmup": args.warmup, "goal": {"blocks": 1, "bytes": 256},
                          "rows": rows}, indent=1))
    return 0


def _line(row: dict) -> str:
    where = f"{row['python']:8} {row['mode']:15} beside {row['neighbour']:8} {row['kind']:12}"
    if "problem" in row:
        return f"{where} {row['problem']}"
    if row.get("leak_per_cycle") is None:
        return f"{where} {row['note']}"
    unit = "blocks" if row["kind"] == "blocks" else "B"
    twin = "" if row["trustworthy"] else f"  (twin {row['twin_verdict']}: not a clean floor)"
    return (f"{where} flags {row['leak_per_cycle']:>6} {unit}/cycle "
            f"(excess {row['excess']:+.1f} against tolerance {row['tolerance']:.1f}){twin}")


if __name__ == "__main__":
    sys.exit(main())
