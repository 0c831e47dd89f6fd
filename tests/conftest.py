"""Shared test fixtures: the target Pythons on this machine and the leaky extensions built for them.

Tests that need a target Python are parametrized over fixtures.targets.PYTHON_IDS,
whatever is installed, and ask `target_for(python_id)` at run time: a missing
Python skips the test with its name, except under CI (CI=true), which installs
every one of them, so a missing one there fails instead of silently not testing.
"""

from __future__ import annotations

import fcntl
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.build import EXT_DIR, FALLBACK_PACKAGE, build_fixtures
from fixtures.targets import EXPECTED_PYTHONS, missing
from harness.errors import CompileError, HarnessError
from harness.backends.memray_ import memray_location
from harness.host.target import TargetPython, installed_pythons, target_python

BUILD_SCRIPT = Path(__file__).with_name("fixtures") / "build.py"
#: the fixture projects' own suites (tests/fixtures/lhproj/tests) run inside their
#: venvs from the tests that build them, never as part of this suite
collect_ignore = ["fixtures"]


def _discover() -> dict[str, TargetPython]:
    """One interpreter per (major.minor, debug) among the installed ones, first found wins."""
    by_kind: dict[tuple[str, bool], TargetPython] = {}
    for executable in installed_pythons():
        try:
            target = target_python(executable)
        except HarnessError:
            continue  # too old, broken, or not a Python at all
        by_kind.setdefault((target.short_version, target.debug), target)
    return {
        python_id: by_kind[kind]
        for python_id, kind in EXPECTED_PYTHONS.items()
        if kind in by_kind
    }


@pytest.fixture(scope="session")
def installed_targets() -> dict[str, TargetPython]:
    """The expected target Pythons present here, by id ("3.12", "debug", ...)."""
    return _discover()


@pytest.fixture(scope="session")
def target_for(installed_targets):
    """target_for("3.12") -> TargetPython, or skip (fail under CI) when it is not installed."""

    def lookup(python_id: str) -> TargetPython:
        if python_id not in installed_targets:
            version, debug = EXPECTED_PYTHONS[python_id]
            missing(f"Python {version}{' debug build' if debug else ''} not installed")
        return installed_targets[python_id]

    return lookup


def _fixture_digest(target: TargetPython) -> str:
    h = hashlib.sha256()
    for part in [target.realpath, target.version, target.ext_suffix, BUILD_SCRIPT.read_bytes()]:
        h.update(part if isinstance(part, bytes) else part.encode())
    for source in [*sorted(EXT_DIR.iterdir()), FALLBACK_PACKAGE]:
        h.update(source.name.encode())
        h.update(source.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class FixtureModules:
    """The fixture extensions for one target Python: put `directory` on PYTHONPATH."""

    target: TargetPython
    directory: Path


@pytest.fixture(scope="session")
def fixture_modules_for(target_for, tmp_path_factory):
    """fixture_modules_for("3.12") -> FixtureModules, compiled once per session and Python.

    Built under the parent of the session's basetemp, which every xdist worker
    of one run shares, behind a file lock; the directory name carries a digest
    of the sources, so a later session reuses a build only if nothing changed.
    """
    shared_root = tmp_path_factory.getbasetemp().parent / "leak-harness-fixtures"
    shared_root.mkdir(parents=True, exist_ok=True)
    built: dict[str, FixtureModules] = {}

    def get(python_id: str) -> FixtureModules:
        if python_id in built:
            return built[python_id]
        target = target_for(python_id)
        directory = shared_root / f"{target.label}-{_fixture_digest(target)}"
        done_marker = directory / ".complete"
        with open(shared_root / f"{directory.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done_marker.exists():
                try:
                    build_fixtures(target, directory)
                except CompileError as exc:  # the fixture source is wrong: never a skip
                    pytest.fail(f"the fixture extensions do not compile for Python {target.label}: {exc}")
                except HarnessError as exc:  # no compiler, no pythonX.Y-config
                    missing(f"cannot build the fixture extensions for Python {target.label}: {exc}")
                done_marker.touch()
        built[python_id] = FixtureModules(target=target, directory=directory)
        return built[python_id]

    return get


@pytest.fixture(scope="module")
def memray_target(target_for):
    """memray_target("3.12") -> TargetPython with memray installed in it, or the
    CI rule's skip/fail (memray must be installed into each target it runs in)."""
    def get(python_id: str):
        target = target_for(python_id)
        try:
            memray_location(target)
        except HarnessError as exc:
            missing(str(exc))
        return target
    return get
