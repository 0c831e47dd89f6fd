"""Known leaks: understood leaks (with a reason) that a nightly job reports but never fails on.

The file is TOML, one `[[leak]]` table per entry:

    [[leak]]
    module = "_decimal"            # required; shell-style pattern ("_test*")
    python = ">=3.12, <3.14"       # optional version range; "==3.12" = any 3.12.x
    mode = "finalize"              # optional; a mode or a list of modes
    backend = "counters"           # optional; a backend or a list
    verdicts = ["leak"]            # optional; default ["leak"]; may name crash/timeout/error
    debug = false                  # optional; true = only debug builds, false = only release
    triggered_by = ["blocks"]      # optional; only leaks that no other counter triggered
    reason = "why it leaks, and why that is acceptable for now"   # required
    link = "https://..."           # optional: the upstream issue

An entry that matches results of this run but none with its verdicts is
*stale* (the leak is gone: delete the entry); one that matches nothing that
ran is *unexercised* (that module/python/mode was not in this run).
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..host.modes import MODES
from ..host.versions import VersionRange, VersionRangeError
from ..result import VERDICTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

_FIELDS = {"module", "python", "mode", "backend", "verdicts", "debug", "triggered_by", "reason",
           "link"}
_COUNTERS = ("blocks", "bytes", "refs", "native_blocks", "native_bytes")


class KnownLeaksError(HarnessError):
    """The known-leaks file is missing or malformed."""


@dataclass(frozen=True)
class KnownLeak:
    module: str
    reason: str
    python: VersionRange | None = None
    modes: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ("leak",)
    debug: bool | None = None
    triggered_by: tuple[str, ...] = ()
    link: str | None = None
    where: str = ""

    def selects(self, line: dict[str, Any]) -> bool:
        """Whether a result is of this entry's module, python, mode and backend (any verdict)."""
        python = line.get("python") or {}
        name = line.get("module") or line.get("case") or ""
        return (fnmatch.fnmatchcase(name, self.module)
                and (self.python is None or self.python.admits(str(python.get("version", ""))))
                and (self.debug is None or bool(python.get("debug")) == self.debug)
                and (not self.modes or line.get("mode") in self.modes)
                and (not self.backends or line.get("backend") in self.backends))

    def matches(self, line: dict[str, Any]) -> bool:
        """Selected, of a listed verdict, and (with `triggered_by`) judged only on those counters.

        `triggered_by` keeps a broad entry narrow: a known blocks-only excess
        does not hide a new leak that also shows in bytes.
        """
        if not (self.selects(line) and line.get("verdict") in self.verdicts):
            return False
        if self.triggered_by and line.get("verdict") == "leak":
            fired = set((line.get("evidence") or {}).get("triggered_by") or ())
            return fired <= set(self.triggered_by)
        return True

    def describe(self) -> str:
        parts = [self.module]
        if self.python:
            parts.append(f"python {self.python.text}")
        if self.modes:
            parts.append("/".join(self.modes))
        if self.backends:
            parts.append("/".join(self.backends))
        return f"{', '.join(parts)}  [{self.where}]"

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "python": self.python.text if self.python else None,
                "modes": list(self.modes), "backends": list(self.backends),
                "verdicts": list(self.verdicts), "debug": self.debug,
                "triggered_by": list(self.triggered_by),
                "reason": self.reason, "link": self.link, "where": self.where}


def _names(value: Any, field_name: str, allowed: tuple[str, ...] | None, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise KnownLeaksError(f"{where}: {field_name} must be a string or a list of strings")
    # an empty list would silently mean "all" (mode, backend) or "none" (verdicts)
    if not items or not all(i.strip() for i in items):
        raise KnownLeaksError(f"{where}: {field_name} must name at least one value "
                              "(leave the field out to mean any)")
    if allowed is not None:
        for item in items:
            if item not in allowed:
                raise KnownLeaksError(
                    f"{where}: {field_name} {item!r} is not one of {', '.join(allowed)}")
    return tuple(items)


def _version_range(text: str, where: str) -> VersionRange:
    try:
        return VersionRange.parse(text)
    except VersionRangeError as exc:
        raise KnownLeaksError(f"{where}: python = {text!r}: {exc}") from None


def _entry(raw: Any, where: str) -> KnownLeak:
    if not isinstance(raw, dict):
        raise KnownLeaksError(f"{where}: each [[leak]] must be a table")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise KnownLeaksError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                              f"allowed: {', '.join(sorted(_FIELDS))}")
    for required in ("module", "reason"):
        if not isinstance(raw.get(required), str) or not raw[required].strip():
            raise KnownLeaksError(f"{where}: '{required}' is required (a non-empty string)")
    if "debug" in raw and not isinstance(raw["debug"], bool):
        raise KnownLeaksError(f"{where}: debug must be true or false")
    python = raw.get("python")
    if python is not None and (not isinstance(python, str) or not python.strip()):
        # "" would match every Python: leave the field out for that
        raise KnownLeaksError(f"{where}: python must be a version range such as '>=3.12, <3.14' "
                              "(leave it out to mean any Python)")
    return KnownLeak(
        module=raw["module"], reason=raw["reason"].strip(),
        python=_version_range(python, where) if python is not None else None,
        modes=_names(raw["mode"], "mode", tuple(MODES), where) if "mode" in raw else (),
        backends=_names(raw["backend"], "backend", None, where) if "backend" in raw else (),
        verdicts=_names(raw.get("verdicts", ["leak"]), "verdicts",
                        tuple(v for v in VERDICTS if v != "clean"), where),
        debug=raw.get("debug"), link=raw.get("link"), where=where,
        triggered_by=_names(raw["triggered_by"], "triggered_by", _COUNTERS, where)
        if "triggered_by" in raw else (),
    )


def load_known_leaks(path: str | Path) -> list[KnownLeak]:
    """Parse and validate the file; any problem is one line naming the entry and field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KnownLeaksError(f"known-leaks file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KnownLeaksError(f"cannot read known-leaks file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KnownLeaksError(f"{path}: not valid TOML: {exc}") from None
    extra = set(data) - {"leak"}
    if extra:
        raise KnownLeaksError(f"{path}: unknown top-level key(s) {', '.join(sorted(extra))}; "
                              "entries are [[leak]] tables")
    entries = data.get("leak", [])
    if not isinstance(entries, list):
        raise KnownLeaksError(f"{path}: 'leak' must be an array of tables ([[leak]])")
    return [_entry(raw, f"{path.name} entry {number}") for number, raw in enumerate(entries, 1)]


def first_match(entries: list[KnownLeak], line: dict[str, Any]) -> KnownLeak | None:
    return next((entry for entry in entries if entry.matches(line)), None)
