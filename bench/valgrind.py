"""Cost of the valgrind backend, and what CPython loses per finalize cycle under memcheck.

    python bench/valgrind.py [--python PY ...] [--cycles N] [--module NAME] [--json]

For each target Python (default: the installed 3.12 and 3.13):

1. slowdown: the `pass` case in finalize mode under memcheck exactly as the
   backend runs it (PYTHONMALLOC=malloc, per-cycle leak checks, XML,
   suppressions) against the bare host loop (`bare-finalize`: no hook, no
   valgrind), in CPU ms per cycle.  Each side's 1-cycle run is subtracted,
   so valgrind's start-up and translation of the code (~1.5 s) and the
   first initialization do not dilute the per-cycle ratio.  Target: <= 40x.
2. the time for one module (`import NAME`, default json) through the
   engine, case + control + extension-import probe: once with per-cycle
   client requests (one run of W + C cycles each), once by differential
   counts (runs of W + 1 and W + C cycles each).
3. CPython's own definitely-lost bytes per finalize cycle of the `pass`
   control, with only the base suppressions (the version file would hide
   exactly these).

A benchmark, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.backends.valgrind.backend import METHOD_ENV, ValgrindBackend  # noqa: E402
from common import release_pythons  # noqa: E402
from harness.cases.model import Case  # noqa: E402
from harness.engine import Engine # noqa: E402
from harness.settings import RunSettings # noqa: E402
from harness.host.build import build_host  # noqa: E402
from harness.host.target import target_python  # noqa: E402
from harness.verdict.rule import theil_sen_slope  # noqa: E402

TARGET_SLOWDOWN = 40.0


class _BaseOnly(ValgrindBackend):
    use_version_suppressions = False



def run_host(argv: list[str], env: dict[str, str]) -> tuple[float, list[dict]]:
    """(CPU ms, samples) of one host process; the host writes samples to fd 3."""
    with tempfile.TemporaryFile() as samples, tempfile.TemporaryFile() as output:
        argv = [a if a != "{fd}" else str(samples.fileno()) for a in argv]
        proc = subprocess.Popen(argv, stdout=output, stderr=output, env=env,
                                pass_fds=(samples.fileno(),))
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            output.seek(0)
            print(f"  host failed: {output.read().decode(errors='replace')[-500:]}", file=sys.stderr)
        samples.seek(0)
        rows = [json.loads(line) for line in samples.read().decode().splitlines()
                if json.loads(line).get("event") == "sample"]
    return (usage.ru_utime + usage.ru_stime) * 1000.0, rows


def valgrind_argv(backend: ValgrindBackend, python: str, mode: str, cycles: int,
                  case_file: str, workdir: Path) -> tuple[list[str], dict[str, str]]:
    target = target_python(python)
    settings = RunSettings(python=python, mode=mode, backend="valgrind", cycles=max(cycles, 4), warmup=0)
    backend.check(target, settings)
    spec = backend.launch(target, settings, "bench", workdir)
    host = str(build_host(target))
    env = {**os.environ, **spec.env}
    return [*spec.prefix, host, mode, str(cycles), case_file, "{fd}", target.sys_executable], env


def per_cycle_ms(argv_for, cycles: int) -> float:
    """Steady state: a 1-cycle run is subtracted, so start-up, the first
    initialization and valgrind's translation of the code a cycle runs
    (most of the first cycle's cost under memcheck) are left out."""
    base, _ = run_host(*argv_for(1))
    full, _ = run_host(*argv_for(1 + cycles))
    return (full - base) / cycles


def bench_python(python: str, cycles: int, module: str, say=print) -> dict:
    """The figures of one Python (also printed through `say`)."""
    target = target_python(python)
    host = str(build_host(target))
    figures: dict = {"python": target.version, "module": module, "cycles": cycles}
    say(f"Python {target.version} ({python})")
    with tempfile.TemporaryDirectory() as tmp:
        case_file = str(Path(tmp, "case.py"))
        Path(case_file).write_text("pass\n")

        def bare(n: int):
            return [host, "bare-finalize", str(n), case_file, "{fd}", target.sys_executable], dict(os.environ)

        def under_valgrind(n: int):
            return valgrind_argv(ValgrindBackend(), python, "finalize", n, case_file, Path(tmp))

        bare_ms = per_cycle_ms(bare, cycles * 4)
        vg_ms = per_cycle_ms(under_valgrind, cycles)
        ratio = vg_ms / bare_ms if bare_ms > 0 else float("nan")
        figures.update(bare_ms_per_cycle=round(bare_ms, 2), memcheck_ms_per_cycle=round(vg_ms, 1),
                       slowdown=round(ratio, 2), slowdown_target=TARGET_SLOWDOWN)
        say(f"  pass, finalize: bare host {bare_ms:.1f} ms/cycle, under memcheck {vg_ms:.0f} ms/cycle"
              f" -> slowdown {ratio:.1f}x (target <= {TARGET_SLOWDOWN:.0f}x)"
              f" {'ok' if ratio <= TARGET_SLOWDOWN else 'ABOVE TARGET'}")

        argv, env = valgrind_argv(_BaseOnly(), python, "finalize", cycles + 1, case_file, Path(tmp))
        _, samples = run_host(argv, env)
        lost = [float(s.get("vg_lost_bytes", 0)) for s in samples[1:]]
        blocks = [float(s.get("vg_lost_blocks", 0)) for s in samples[1:]]
        figures.update(cpython_lost_bytes_per_cycle=theil_sen_slope(lost),
                       cpython_lost_blocks_per_cycle=theil_sen_slope(blocks))
        say(f"  CPython's own loss per finalize cycle (`pass`, base suppressions only): "
              f"{theil_sen_slope(lost):,.0f} bytes definitely lost (incl. indirect) in "
              f"{theil_sen_slope(blocks):,.0f} blocks")

    for method in ("client-requests", "differential"):
        os.environ[METHOD_ENV] = method
        started = time.monotonic()
        result = Engine().run(Case(f"import-{module}", f"import {module}", module),
                              RunSettings(python=python, mode="finalize", backend="valgrind",
                                          cycles=4, warmup=1, timeout=1800))
        wall = time.monotonic() - started
        runs = "1 + 4 cycles" if method == "client-requests" else "2 and 1 + 4 cycles"
        figures[f"module_wall_s_{method.replace('-', '_')}"] = round(wall, 2)
        figures[f"module_verdict_{method.replace('-', '_')}"] = result.verdict
        say(f"  one module (import {module}), {method} ({runs}; case, control, probe): "
              f"{wall:.1f} s wall, verdict {result.verdict}")
    os.environ.pop(METHOD_ENV, None)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", default=[])
    parser.add_argument("--cycles", type=int, default=6, help="cycles under valgrind (default 6)")
    parser.add_argument("--module", default="json")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    say = (lambda *a, **k: None) if args.json else print
    rows: list[dict] = []
    for python in args.python or release_pythons():
        try:
            rows.append(bench_python(python, args.cycles, args.module, say))
        except Exception as exc:  # a benchmark reports, never fails
            rows.append({"python": python, "failed": str(exc)})
            say(f"  {python}: {exc}")
    if args.json:
        print(json.dumps({"unit": "CPU ms per cycle, 1-cycle run subtracted", "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
