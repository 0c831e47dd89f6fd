"""The result of one case in one mode: a plain dataclass with the documented JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import SCHEMA_VERSION

VERDICTS = ("leak", "clean", "unsupported", "crash", "timeout", "error")
#: `run` exit status per verdict: 0 clean/unsupported, 1 leak, 3 crash/timeout/error.
EXIT_CODES = {"clean": 0, "unsupported": 0, "leak": 1, "crash": 3, "timeout": 3, "error": 3}


@dataclass
class Result:
    """Everything `run --json` prints; extra fields only ever extend the contract."""

    case: str
    module: str | None
    python: dict[str, Any]
    mode: str
    backend: str
    host: str
    cycles: int
    warmup: int
    verdict: str
    per_cycle: dict[str, float | None] | None = None
    control: dict[str, Any] | None = None
    excess: dict[str, float | None] | None = None
    samples: list[dict] = field(default_factory=list)
    sites: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)   # memcheck errors (valgrind backend)
    message: str | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    last_cycle: int = 0
    wall_s: float = 0.0
    schema: int = SCHEMA_VERSION
    #: the installed distribution that provides `module`: {"name", "version"}; None for the stdlib
    distribution: dict[str, str] | None = None
    #: verdict crash: where (signal, cycle, phase, stacks), whose (module,
    #: signature) and whether the bare host crashes too (harness/crash.py)
    crash: dict[str, Any] | None = None
    #: verdict timeout: the stacks of every thread when the timeout fired
    hang: dict[str, Any] | None = None
    #: how many cycles ran and why they stopped there (adaptive cycles):
    #: {"policy", "max_cycles", "min_cycles", "cycles_run", "stopped_early", "why"};
    #: `cycles` is always the measured cycles that ran
    cycle_stop: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "case": self.case,
            "module": self.module,
            "python": self.python,
            "mode": self.mode,
            "backend": self.backend,
            "host": self.host,
            "cycles": self.cycles,
            "warmup": self.warmup,
            "verdict": self.verdict,
            "per_cycle": self.per_cycle,
            "control": self.control,
            "excess": self.excess,
            "samples": self.samples,
            "sites": self.sites,
            "errors": self.errors,
            "message": self.message,
            "tolerance": self.tolerance,
            "evidence": self.evidence,
            "last_cycle": self.last_cycle,
            "wall_s": round(self.wall_s, 3),
            "distribution": self.distribution,
            **({"crash": self.crash} if self.crash is not None else {}),
            **({"hang": self.hang} if self.hang is not None else {}),
            **({"cycle_stop": self.cycle_stop} if self.cycle_stop is not None else {}),
        }

    def to_json_line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Result":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)
