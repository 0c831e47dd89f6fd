"""Loss records and errors of memcheck runs -> per-cycle growth, `sites`, `errors` JSON.

Pure functions over parsed reports (harness.memcheck_xml) and host samples;
the valgrind backend picks which snapshots to compare.
"""

from __future__ import annotations

from ..attribution import NativeFrame, attribute, object_name, short_stack
from .memcheck_xml import Frame, LossRecord, MemcheckError, MemcheckReport, totals

MAX_SITES = 12


def records_by_cycle(report: MemcheckReport, samples: list[dict]) -> list[tuple[int, dict]]:
    """[(cycle, {record key: record as of that check})] for the per-cycle checks.

    The XML does not say which cycle a check belongs to; the host's samples
    do say what was lost after each cycle.  A check belongs to the first
    cycle after the previous check's whose lost and possibly-lost *bytes*
    equal the records accumulated so far (exactly: the host asks memcheck
    for both in the same leak search).  Bytes, not blocks: a definite
    record's bytes include the blocks it lost indirectly, its block count
    does not, while the host's lost-blocks count has both."""
    current: dict[tuple, LossRecord] = {}
    out: list[tuple[int, dict]] = []
    last = -1
    for check in report.cycle_checks:
        for record in check.records:
            current[record.key()] = record
        cycle = check.marked_cycle
        if cycle is None:
            definite, possible = totals(current, "definite"), totals(current, "possible")
            cycle = next((s["cycle"] for s in samples if s["cycle"] > last
                          and s.get("vg_lost_bytes") == definite[0]
                          and s.get("vg_possibly_bytes") == possible[0]),
                         last + 1)
        out.append((cycle, dict(current)))
        last = cycle
    return out


def snapshot(history: list[tuple[int, dict]], cycle: int) -> dict:
    chosen: dict = {}
    for at, records in history:
        if at > cycle:
            break
        chosen = records
    return chosen


def growth_between(before: dict, after: dict, span: int) -> dict[tuple, tuple[float, float, LossRecord]]:
    """key -> (bytes/cycle, blocks/cycle, record) for records that grew from `before` to `after`."""
    growth = {}
    for key, record in after.items():
        old = before.get(key)
        grown_bytes = record.total_bytes - (old.total_bytes if old else 0)
        grown_blocks = record.total_blocks - (old.total_blocks if old else 0)
        if grown_bytes > 0 or grown_blocks > 0:
            growth[key] = (grown_bytes / span, grown_blocks / span, record)
    return growth


def exit_records(report: MemcheckReport) -> dict:
    final = report.final_check
    return {r.key(): r for r in final.records} if final else {}


def native_frames(frames: tuple[Frame, ...]) -> list[NativeFrame]:
    return [NativeFrame(f.fn, f.obj, f.file, f.line) for f in frames]


def sites(case_growth: dict, control_growth: dict, case_module: str | None, host_object: str,
          roots=()) -> list[dict]:
    """Growing loss records of the case beyond the control's, attributed, largest first."""
    out = []
    for key, (bytes_pc, blocks_pc, record) in case_growth.items():
        c_bytes, c_blocks, _ = control_growth.get(key, (0.0, 0.0, None))
        bytes_pc, blocks_pc = bytes_pc - c_bytes, blocks_pc - c_blocks
        if bytes_pc <= 0 and blocks_pc <= 0:
            continue
        frames = native_frames(record.stack)
        who = attribute(frames, case_module, host_objects=[host_object], roots=roots)
        stack = short_stack(frames, who.frame_index, skip_objects=[host_object])
        out.append({
            "module": who.module, "kind": record.kind,
            "bytes_per_cycle": round(bytes_pc, 3), "blocks_per_cycle": round(blocks_pc, 3),
            "attributed_by": who.reason, "at": _where(frames, who.frame_index, stack),
            "stack": stack,
        })
    out.sort(key=lambda s: (-s["bytes_per_cycle"], -s["blocks_per_cycle"]))
    return out[:MAX_SITES]


def _where(frames: list[NativeFrame], index: int | None, stack: list[dict]) -> str:
    """file:line of the frame that named the module, else of the first frame shown."""
    if index is not None:
        frame = frames[index]
        if frame.file:
            return f"{frame.file}:{frame.line}" if frame.line is not None else frame.file
        return object_name(frame.object_path) or "?"
    return stack[0]["where"] if stack else "?"


def error_json(error: MemcheckError, case_module: str | None, host_object: str, roots=()) -> dict:
    frames = native_frames(error.stack)
    who = attribute(frames, case_module, host_objects=[host_object], roots=roots)
    stack = short_stack(frames, who.frame_index, length=8, skip_objects=[host_object])
    at = _where(frames, who.frame_index, stack)
    return {
        "kind": error.kind, "what": error.what, "count": error.count, "module": who.module,
        "at": at, "stack": stack,
        "aux": [{"what": label, "stack": short_stack(native_frames(s), None, length=6,
                                                     skip_objects=[host_object])}
                for label, s in error.aux],
    }
