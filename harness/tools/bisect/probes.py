"""What a bisect measures: a subset of items -> a `Probe`, for each kind of item.

Each builder returns (kind, labels, shrinker): the ddmin `Shrinker` over
`probe(subset)`, which runs the case built from the subset — the kept
statements plus what they need, a set of `import` lines, or a set of tests
run in-process by pytest (regrtest -R style).
"""

from __future__ import annotations

from pathlib import Path

from ...cases.model import Case, import_case, read_source, stdlib_import_cases
from ...engine import Engine
from ...errors import CaseError
from ...host.target import target_python
from ...result import Result
from ...settings import RunSettings
from .ddmin import Probe, Shrinker


def probe_of(result: Result) -> Probe:
    return Probe(verdict=result.verdict, excess=dict(result.excess or {}),
                 message=result.message or "", wall_s=result.wall_s)


def statements_shrinker(source: str, name: str, filename: str, settings: RunSettings,
                        jobs: int, retries: int) -> tuple[str, list[str], Shrinker]:
    from .statements import closure, render, split_statements
    statements = split_statements(source, filename)
    if not statements:
        raise CaseError("the script has no statements to shrink")
    engine = Engine()

    def probe(key):
        return probe_of(engine.run(Case(name=f"{name}-bisect", code=render(statements, key)), settings))

    labels = [s.source for s in statements]
    shrinker = Shrinker(probe, canonical=lambda subset: closure(statements, subset),
                        jobs=jobs, retries=retries)
    return "statements", labels, shrinker


def script_source(file: str | None, code: str | None) -> tuple[str, str]:
    """(source, case name) of `--file` or `-c`."""
    if file:
        path = Path(file)
        if not path.is_file():
            raise CaseError(f"--file {path} does not exist")
        return read_source(path), path.stem
    return code or "", "code"


def modules_shrinker(modules: str | None, stdlib_of: str | None, exclude: str,
                     settings: RunSettings, jobs: int, retries: int,
                     use_stdlib: bool) -> tuple[str, list[str], Shrinker]:
    excluded = {m.strip() for m in exclude.split(",") if m.strip()}
    if use_stdlib:
        names = [c.module for c in stdlib_import_cases(target_python(stdlib_of))[0]]
    else:
        names = [m.strip() for m in (modules or "").split(",") if m.strip()]
    for name in names:
        if not name.replace(".", "").replace("_", "").isalnum():
            raise CaseError(f"--modules: {name!r} is not a module name")
    names = [n for n in dict.fromkeys(names) if n not in excluded]
    if not names:
        raise CaseError("no modules left to bisect")
    engine = Engine()

    def probe(key):
        code = "".join(import_case(names[i]).code + "\n" for i in key)
        return probe_of(engine.run(Case(name="modules-bisect", code=code), settings))

    return "modules", names, Shrinker(probe, jobs=jobs, retries=retries)


def tests_shrinker(python: str | None, tests: list[str], warmup: int, cycles: int,
                   timeout_s: float, jobs: int, retries: int) -> tuple[str, list[str], Shrinker]:
    from .by_tests import collect_test_ids, run_subset
    executable = target_python(python).executable
    ids = collect_test_ids(executable, tests)

    def probe(key):
        outcome = run_subset(executable, [ids[i] for i in key], warmup, cycles, timeout_s)
        per_repeat = outcome.get("per_repeat") or {}
        return Probe(verdict=outcome["verdict"], excess={k: per_repeat.get(k) for k in ("blocks", "refs")},
                     message=outcome.get("message", ""))

    return "tests", ids, Shrinker(probe, jobs=jobs, retries=retries)
