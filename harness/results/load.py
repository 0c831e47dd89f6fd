"""Read sweep results back: JSON lines (one or many files, e.g. shards) or a JSON report.

Everything downstream of a sweep (reports, `merge`, `compare`) reads through
here, so the schema check and the identity of a result live in one place.
A result is identified by (python, mode, backend, case); the python part is
the version plus "-debug", never the executable path, because shards of one
nightly run on different machines with different paths.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .. import SCHEMA_VERSION
from ..errors import HarnessError, read_input_text
from ..host.target import version_label
from ..result import VERDICTS, Result

#: `kind` of the single-document JSON report (report --format json), which
#: load() accepts as input too: it is what the nightly keeps as its baseline.
REPORT_KIND = "leak-harness report"


class ResultsError(HarnessError):
    """A results file is missing, unreadable, of another schema, or not ours."""


Key = tuple[str, str, str, str, str]


def python_label(python: dict[str, Any]) -> str:
    """'3.12.1' or '3.11.7-debug': how a target is named in reports and keys."""
    return version_label(str(python.get("version", "?")), bool(python.get("debug")))


def result_key(line: dict[str, Any]) -> Key:
    """(python label, mode, backend, case, interpreter) of one JSON line.
    The interpreter's path is in it: two venvs of one Python are two
    targets (a sweep of both had half its results dropped as repeats)."""
    python = line.get("python") or {}
    return (python_label(python), line.get("mode", "?"), line.get("backend", "?"),
            line.get("case", "?"), str(python.get("executable", "")))


def control_key(line: dict[str, Any]) -> tuple[str, str, str, str]:
    """The (python, mode, backend, interpreter) a `pass` control is shared by."""
    python_, mode, backend, _, executable = result_key(line)
    return python_, mode, backend, executable


@dataclass
class ResultSet:
    """Merged results: JSON lines as read (every field kept) plus typed views."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def cases(self) -> list[Result]:
        return [Result.from_json(line) for line in self.lines if line.get("role") != "control"]

    @property
    def controls(self) -> list[Result]:
        return [Result.from_json(line) for line in self.lines if line.get("role") == "control"]

    def case_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("role") != "control"]

    def control_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("role") == "control"]

    def control_for(self, line: dict[str, Any]) -> dict[str, Any] | None:
        """The `pass` control line of the same python, mode and backend, if any."""
        wanted = control_key(line)
        for control in self.control_lines():
            if control_key(control) == wanted:
                return control
        return None


def _check_line(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or "verdict" not in data or "case" not in data:
        raise ResultsError(f"{where}: not a leak-harness result (no 'case'/'verdict')")
    schema = data.get("schema")
    if schema != SCHEMA_VERSION:
        raise ResultsError(
            f"{where}: results of schema {schema!r}, this leak-harness reads schema "
            f"{SCHEMA_VERSION}; re-run the sweep with this version")
    data.setdefault("role", "case")
    problem = _shape_problem(data)
    if problem:
        raise ResultsError(f"{where}: {problem}")
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers_problem(obj: Any, name: str) -> str | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        return f"'{name}' is {type(obj).__name__}, not an object"
    for key, value in obj.items():
        if value is not None and not _is_number(value):
            return f"'{name}.{key}' is {value!r}, not a finite number or null"
    return None


def _shape_problem(data: dict[str, Any]) -> str | None:
    """What makes a line unusable for the reports, or None.

    Every number a report formats, plots or compares is checked here, once,
    so that NaN, a string or a malformed sample is one line naming the field
    instead of a traceback in whichever renderer meets it first.
    """
    if data["verdict"] not in VERDICTS:
        return f"verdict {data['verdict']!r} is not one of {', '.join(VERDICTS)}"
    for key in ("case", "mode", "backend"):
        if key in data and not isinstance(data[key], str):
            return f"'{key}' is {data[key]!r}, not a string"
    python = data.get("python")
    if not isinstance(python, dict) or not isinstance(python.get("version", ""), str):
        return "'python' must be an object with a string 'version'"
    for key in ("per_cycle", "excess", "tolerance"):
        problem = _numbers_problem(data.get(key), key)
        if problem:
            return problem
    control = data.get("control")
    if control is not None:
        if not isinstance(control, dict):
            return "'control' is not an object"
        for key in ("per_cycle", "extension_import_per_cycle"):
            problem = _numbers_problem(control.get(key), f"control.{key}")
            if problem:
                return problem
    evidence = data.get("evidence")
    if evidence is not None and not isinstance(evidence, dict):
        return "'evidence' is not an object"
    interned = (evidence or {}).get("interned_strings_per_cycle")
    if interned is not None and not _is_number(interned):
        return f"'evidence.interned_strings_per_cycle' is {interned!r}, not a number"
    samples = data.get("samples")
    if samples is not None:
        if not isinstance(samples, list):
            return "'samples' is not a list"
        for index, sample in enumerate(samples):
            problem = _numbers_problem(sample, f"samples[{index}]")
            if problem or sample is None:
                return problem or f"'samples[{index}]' is null, not an object"
    return None


def _read_file(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Lines of one file; a truncated last line (a killed sweep) is dropped with a note."""
    text = read_input_text(path, "results file", ResultsError)
    stripped = text.lstrip()
    if stripped.startswith("{") and "\n{" not in stripped.rstrip():
        # one JSON document: `run --json` output or a `report --format json`
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError:
            document = None  # a single JSON line that is cut off: handled below
        if isinstance(document, dict) and document.get("kind") == REPORT_KIND:
            if document.get("schema") != SCHEMA_VERSION:
                raise ResultsError(
                    f"{path}: report of schema {document.get('schema')!r}, this leak-harness "
                    f"reads schema {SCHEMA_VERSION}")
            lines = [_check_line(d, f"{path}: results[{i}]")
                     for i, d in enumerate(document.get("results", []) + document.get("controls", []))]
            return lines, []
        if isinstance(document, dict):
            return [_check_line(document, str(path))], []
    lines, notes = [], []
    raw_lines = text.splitlines()
    for number, raw in enumerate(raw_lines, 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            if number == len(raw_lines) and not text.endswith("\n"):
                notes.append(f"{path}:{number}: incomplete last line dropped (interrupted sweep?)")
                continue
            raise ResultsError(f"{path}:{number}: not JSON ({exc.msg})") from None
        lines.append(_check_line(data, f"{path}:{number}"))
    return lines, notes


def load_results(paths: Iterable[str | Path]) -> ResultSet:
    """Read and merge results files, later files winning on the same key.

    Cases are deduplicated by (python, mode, backend, case, interpreter): a re-run or an
    overlapping shard replaces the earlier line. Controls are kept once per
    (python, mode, backend): each shard measures its own `pass` control of
    the same thing, and the first one read is kept for CPython's own row.
    """
    merged = ResultSet()
    cases: dict[Key, dict[str, Any]] = {}
    controls: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    replaced = 0
    paths = [Path(p) for p in paths]
    if not paths:
        raise ResultsError("no results files given")
    for path in paths:
        lines, notes = _read_file(path)
        merged.sources.append(str(path))
        merged.notes.extend(notes)
        for line in lines:
            if line["role"] == "control":
                controls.setdefault(control_key(line), line)
                continue
            key = result_key(line)
            if key in cases:
                replaced += 1
            cases[key] = line
    if replaced:
        merged.notes.append(f"{replaced} result(s) given more than once: the later line kept")
    merged.lines = list(controls.values()) + list(cases.values())
    return merged


def write_lines(results: ResultSet, out: Any) -> int:
    """Write merged results as JSON lines (the `sweep --out` format); returns the count."""
    for line in results.lines:
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
    return len(results.lines)
