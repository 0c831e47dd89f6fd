"""Lifecycle modes: how each cycle creates and ends an interpreter."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModeUnavailableError
from .target import TargetPython


@dataclass(frozen=True)
class Mode:
    name: str
    min_version: tuple[int, int]
    ends_with: str          # the C call whose leftovers the mode measures
    description: str
    #: N host threads run interpreters concurrently; samples are process
    #: totals after each round of N interpreter cycles (see RunSettings.threads)
    threaded: bool = False


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("finalize", (3, 10), "Py_FinalizeEx",
             "init -> run -> Py_FinalizeEx, again and again in one process"),
        Mode("subinterpreter", (3, 12), "Py_EndInterpreter",
             "isolated subinterpreter per cycle: own GIL, own obmalloc, "
             "check_multi_interp_extensions=1"),
        Mode("legacy-subinterpreter", (3, 10), "Py_EndInterpreter",
             "Py_NewInterpreter per cycle: shared GIL and obmalloc"),
        Mode("parallel", (3, 12), "Py_EndInterpreter",
             "--threads N OS threads, each an isolated own-GIL subinterpreter per cycle, "
             "concurrently; growth is reported per interpreter cycle", threaded=True),
    )
}
DEFAULT_SWEEP_MODES = ("finalize", "subinterpreter")


def mode_problem(mode: str, target: TargetPython) -> str | None:
    """Why `mode` cannot run on `target`, or None when it can."""
    if mode not in MODES:
        return f"unknown mode {mode!r}; choose from {', '.join(MODES)}"
    need = MODES[mode].min_version
    if target.version_info[:2] < need:
        return (
            f"mode {mode} needs Python {need[0]}.{need[1]}+ "
            f"(per-interpreter GIL); {target.executable} is {target.version}"
        )
    return None


def check_mode(mode: str, target: TargetPython) -> None:
    problem = mode_problem(mode, target)
    if problem:
        raise ModeUnavailableError(problem)
