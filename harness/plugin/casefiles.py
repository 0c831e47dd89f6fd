"""pytest front end for case files: `cases/*.toml`, `leak_*.toml` -> one item per (python, mode).

Measured in setup, so a crash or an error is a setup ERROR and only a leak a
FAILED test; unsupported (CPython or the extension refuses the mode, the
case's `requires` do not fit) is SKIPPED with why.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest

from ..cases.catalog import CaseFile, load_case_file
from ..errors import HarnessError
from ..host.modes import mode_problem
from ..host.target import target_python
from ..report.pytest_text import failure_text
from .ids import python_prefix
from ..result import Result


def _session(config: pytest.Config) -> Any:
    """The LeakSession pytest_plugin.pytest_configure registered."""
    return config.pluginmanager.get_plugin("leak_harness_session")


def _is_case_file(path: Path, config: pytest.Config, globs: tuple[str, ...]) -> bool:
    try:
        relative = path.relative_to(config.rootpath).as_posix()
    except ValueError:
        relative = path.as_posix()
    return any(fnmatch.fnmatch(path.name, g) if "/" not in g else fnmatch.fnmatch(relative, g)
               for g in globs)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".toml":
        return None
    session = _session(parent.config)
    if not _is_case_file(file_path, parent.config, session.options.case_globs):
        return None
    return CaseFileCollector.from_parent(parent, path=file_path)


class CaseFileCollector(pytest.File):
    """One case file: an item per (python, mode)."""

    def collect(self):
        try:
            case_file = load_case_file(self.path)
        except HarnessError as exc:
            raise self.CollectError(str(exc)) from None
        options = _session(self.config).options
        for python in options.pythons:
            try:
                label = python_prefix(options.pythons, python)
            except HarnessError as exc:
                raise self.CollectError(f"--leak-python: {exc}") from None
            for mode in case_file.modes_for(options.modes):
                yield CaseItem.from_parent(self, name=f"{case_file.name}[{label}{mode}]",
                                           case_file=case_file, python=python, mode=mode)


class CaseRunError(Exception):
    """The host crashed, timed out or the case raised: reported as an error, not a failure."""


class CaseItem(pytest.Item):
    """One case in one mode on one Python: fail on leak, error on crash, skip on unsupported."""

    def __init__(self, *, case_file: CaseFile, python: str | None, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case_file = case_file
        self.python = python
        self.mode = mode
        self.result: Result | None = None
        # tags select with -k (as keywords, not markers: --strict-markers
        # would reject every tag nobody registered)
        self.extra_keyword_matches.update(case_file.case.tags)

    def setup(self) -> None:
        # Measuring happens here, so that a crash or an error is a setup ERROR
        # and only a leak is a FAILED test.
        session = _session(self.config)
        try:
            target = target_python(self.python)
        except HarnessError as exc:
            pytest.fail(f"leak-harness: {exc}", pytrace=False)
        problem = mode_problem(self.mode, target) or self.case_file.requires.problem(target)
        if problem:
            pytest.skip(problem)
        try:
            settings = session.options.settings(self.python, self.mode, cycles=self.case_file.case.cycles)
            self.result = session.engine.run(self.case_file.case, settings)
        except HarnessError as exc:
            pytest.fail(f"leak-harness: {exc}", pytrace=False)
        session.record_result(self, self.result)
        if self.result.verdict == "unsupported":
            pytest.skip(self.result.message or "unsupported")
        if self.result.verdict in ("crash", "timeout", "error"):
            pytest.fail(failure_text(self.result), pytrace=False)

    def runtest(self) -> None:
        if self.result is not None and self.result.verdict == "leak":
            pytest.fail(failure_text(self.result), pytrace=False)

    def reportinfo(self):
        return self.path, None, f"leak case {self.name}"
