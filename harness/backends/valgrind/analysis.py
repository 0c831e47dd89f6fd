"""What a valgrind run means: pure functions over what memcheck wrote.

The backend (backend.py) runs the host under memcheck and reads the XML
into `ValgrindArtifacts`; everything here is a reading of those artifacts
and the run's samples, with no process and no file of its own, so tests call
it on recorded runs: the per-cycle or differential series, the loss records
that grow, which memcheck errors are the case's and which CPython's, and the
evidence a result carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import suppressions as suppress
from ..attribution import is_interpreter_object, is_system_object, object_name
from .memcheck_xml import MemcheckError, MemcheckReport, totals
from .records import LossRecord, exit_records, growth_between, records_by_cycle, snapshot

if TYPE_CHECKING:
    from ...host.runner import HostRun

#: the host prints these sample keys only when built with memcheck.h
_CLIENT_REQUEST_KEYS = ("vg_lost_bytes", "vg_lost_blocks")
#: frames of an error's signature: enough to tell CPython's own reports
#: apart (Py_INCREF in ceval.c:1863 vs 1801), few enough that the same
#: report reached through another caller still matches
SIGNATURE_FRAMES = 3


@dataclass
class ValgrindArtifacts:
    """What collect() keeps of one run: the parsed XML and how it was made."""

    report: MemcheckReport
    method: str
    suppression_files: list[str]
    host_object: str
    xml_bytes: int = 0
    kept_xml: str | None = None
    #: error signatures of a plain `python -c pass` under the same
    #: suppressions (controls only): CPython's own memcheck reports
    plain_start_errors: frozenset = frozenset()



def error_signature(error: MemcheckError, host_object: str = "") -> tuple:
    """An error class: its kind and its innermost frames, past the allocator
    shims, up to and including the first frame outside CPython (at most
    SIGNATURE_FRAMES).  CPython's own reports match across runs whatever
    Python code led to them; an extension's error keeps its own frame."""
    frames = []
    for frame in error.stack:
        if is_system_object(frame.obj) and not frames:
            continue
        frames.append(frame.key())
        inside = is_interpreter_object(frame.obj) or object_name(frame.obj) == host_object
        if not inside or len(frames) == SIGNATURE_FRAMES:
            break
    return (error.kind, tuple(frames))


def case_errors(case_art: ValgrindArtifacts,
                control_art: ValgrindArtifacts | None) -> tuple[list[MemcheckError], list[MemcheckError]]:
    """(the case's own memcheck errors, those that are CPython's).

    CPython's: the control has the same error (all frames), or the control
    or a plain interpreter start has the same error class (error_signature)."""
    host = case_art.host_object
    keys: set = set()
    classes: set = set()
    if control_art is not None:
        keys = {e.key() for e in control_art.report.errors}
        classes = {error_signature(e, host) for e in control_art.report.errors}
        classes |= control_art.plain_start_errors
    own, cpythons = [], []
    for error in case_art.report.errors:
        theirs = error.key() in keys or error_signature(error, host) in classes
        (cpythons if theirs else own).append(error)
    return own, cpythons


def _has_client_requests(samples: list[dict]) -> bool:
    return bool(samples) and all(all(k in s for k in _CLIENT_REQUEST_KEYS) for s in samples)


def per_cycle(run: "HostRun") -> bool:
    """Measured by per-cycle leak checks (else by difference of two runs)."""
    art: ValgrindArtifacts | None = run.artifacts
    return (art is None or art.method == "client-requests") and _has_client_requests(run.samples)


def lost_at_exit(art: ValgrindArtifacts | None) -> tuple[int, int] | None:
    """(bytes, blocks) definitely + indirectly lost at valgrind's exit check."""
    if art is None:
        return None
    if art.report.final_check is None:
        # a finished run whose exit check printed nothing lost nothing unsuppressed
        return (0, 0) if art.report.complete else None
    records = {r.key(): r for r in art.report.final_check.records}
    return totals(records, "definite")


def differential_series(run: "HostRun") -> tuple[list[float], list[float]] | None:
    """A straight line through lost(k1) and lost(k2), sampled at every cycle.

    The verdict then sees the differential per-cycle loss as its slope (and
    no spread: two points carry none, so the tolerance is the floor)."""
    if not run.companions or not run.samples:
        return None
    (k1, first), = list(run.companions.items())[:1]
    k2 = run.samples[-1]["cycle"]
    low, high = lost_at_exit(first.artifacts), lost_at_exit(run.artifacts)
    if low is None or high is None or k2 <= k1 or not first.completed:
        return None
    lines = []
    for index in (1, 0):   # blocks, bytes
        slope = (high[index] - low[index]) / (k2 - k1)
        lines.append([low[index] + slope * (s["cycle"] - k1) for s in run.samples])
    return lines[0], lines[1]


def record_growth(run: "HostRun", warmup: int) -> dict[tuple, tuple[float, float, LossRecord]]:
    """key -> (bytes/cycle, blocks/cycle, record) over the measured window."""
    art: ValgrindArtifacts | None = run.artifacts
    if art is None or not run.samples:
        return {}
    if per_cycle(run):
        history = records_by_cycle(art.report, run.samples)
        end = run.samples[-1]["cycle"]
        start = min(warmup, end - 1)
        before, after = snapshot(history, start), snapshot(history, end)
        span = end - start
    else:
        if not run.companions:
            return {}
        k1, first = next(iter(run.companions.items()))
        if first.artifacts is None:
            return {}
        before = exit_records(first.artifacts.report)
        after = exit_records(art.report)
        span = run.samples[-1]["cycle"] - k1
    if span <= 0:
        return {}
    return growth_between(before, after, span)


def _slope(values: list[float], warmup: int) -> float | None:
    from ...verdict.rule import growth, measured_window
    window = measured_window(values, warmup)
    return growth(window).whole if len(window) >= 2 else None


def evidence(case_run: "HostRun", control_run: "HostRun", warmup: int, *,
             num_callers: int, version: str) -> dict:
    """How valgrind measured, cross-checks, what the suppressions matched."""
    art: ValgrindArtifacts = case_run.artifacts
    out: dict = {
        "method": art.method, "num_callers": num_callers, "version": version,
        "xml_complete": art.report.complete, "xml_bytes": art.xml_bytes,
        "leak_checks": len(art.report.cycle_checks),
        "suppressions": suppress.matched_per_file(art.report.suppression_counts,
                                                  [Path(f) for f in art.suppression_files]),
    }
    if art.kept_xml:
        out["xml"] = art.kept_xml
    if per_cycle(case_run) and per_cycle(control_run):
        per = {}
        for key in ("vg_possibly_bytes", "vg_possibly_blocks", "vg_suppressed_bytes"):
            case = _slope([float(s[key]) for s in case_run.samples], warmup)
            control = _slope([float(s[key]) for s in control_run.samples], warmup)
            per[key.removeprefix("vg_")] = {"case": case, "control": control}
        out["per_cycle_reported_only"] = per
        out["differential_cross_check"] = _two_point(case_run, control_run, warmup)
    elif case_run.companions:
        k1 = next(iter(case_run.companions))
        out["differential"] = {"k1": k1, "k2": case_run.samples[-1]["cycle"] if case_run.samples else None}
    return out


def _two_point(case_run: "HostRun", control_run: "HostRun", warmup: int) -> dict:
    """(lost(k2) - lost(k1)) / (k2 - k1), case minus control, from the samples."""
    def per_cycle(run: "HostRun", key: str) -> float:
        first, last = run.samples[warmup], run.samples[-1]
        return (last[key] - first[key]) / max(1, last["cycle"] - first["cycle"])
    k1, k2 = case_run.samples[warmup]["cycle"], case_run.samples[-1]["cycle"]
    return {"k1": k1, "k2": k2,
            "blocks": round(per_cycle(case_run, "vg_lost_blocks") - per_cycle(control_run, "vg_lost_blocks"), 3),
            "bytes": round(per_cycle(case_run, "vg_lost_bytes") - per_cycle(control_run, "vg_lost_bytes"), 3)}
