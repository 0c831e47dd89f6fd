"""The counting host's native callers -> `sites` of kind "native", per module.

The counting host (harness/host/native_alloc.c) keeps, per caller of malloc
& co. (the first return address outside libc, the loader and the host), the
live native blocks and bytes, and writes them after the warm-up cycle and
after the last cycle (`native-sites` lines), then the loaded objects with
their load base and segments (`objects`).  A caller that grew between the
two is where a native leak was allocated: its address gives the shared
object and offset, the object gives the module (harness.attribution's
rules: `_json.cpython-312-x86_64-linux-gnu.so` -> `_json`), the offset
gives the function (ELF symbols) and, where the object has debug info,
file:line (addr2line).  Growth is per interpreter cycle, beyond the same
function's growth in the `pass` control.  Pure data in, data out, except
reading the objects' symbols.
"""

from __future__ import annotations

import bisect
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .attribution import CPYTHON, NativeFrame, attribute, object_name
from .native_symbols import function_at

if TYPE_CHECKING:
    from ..host.runner import HostRun

MAX_SITES = 12


@dataclass(frozen=True)
class Place:
    """Where a caller's return address is."""

    object_path: str | None
    offset: int | None        # ELF virtual address in object_path
    function: str | None
    file: str | None = None
    line: int | None = None


class ObjectMap:
    """Run-time address -> object and offset, from the host's `objects` line."""

    def __init__(self, objects: list[dict]) -> None:
        ranges = []
        for obj in objects:
            for start, end in obj.get("segments", []):
                ranges.append((start, end, obj["path"], obj.get("base", 0)))
        ranges.sort()
        self._starts = [r[0] for r in ranges]
        self._ranges = ranges
        self.host = objects[0]["path"] if objects else None   # the main program comes first

    def find(self, address: int) -> tuple[str, int] | None:
        index = bisect.bisect_right(self._starts, address) - 1
        if index < 0:
            return None
        start, end, path, base = self._ranges[index]
        return (path, address - base) if start <= address < end else None


#: the run's tables of callers -> the sites' kind
KINDS = {"native_sites": "native", "pymem_sites": "pymem"}
#: the pymem_sites "caller" of every block with no frame outside CPython
#: within the walk (native_alloc.h: LH_PYMEM_IN_CPYTHON)
IN_CPYTHON_PC = 1
IN_CPYTHON_SITE = {"module": CPYTHON, "kind": "pymem", "function": "(inside CPython)",
                   "at": "inside CPython (no caller outside it within 32 frames)", "object": None,
                   "attributed_by": "cpython"}


def growth_by_caller(run: "HostRun", warmup: int,
                     table: str = "native_sites") -> dict[int, tuple[int, int]]:
    """pc -> (blocks, bytes) gained from the sample after the warm-up to the
    last one; only callers that gained.  `table`: the run's native_sites, or
    its pymem_sites (the first callers of PyMem blocks outside CPython)."""
    records = getattr(run, table)
    if warmup not in records or len(records) < 2:
        return {}
    start = {pc: (blocks, size) for pc, blocks, size in records[warmup]}
    end = records[max(records)]
    grown = {}
    for pc, blocks, size in end:
        before_blocks, before_size = start.get(pc, (0, 0))
        if blocks > before_blocks or size > before_size:
            grown[pc] = (blocks - before_blocks, size - before_size)
    return grown


def place_of(address: int, objects: ObjectMap) -> Place:
    found = objects.find(address)
    if found is None:
        return Place(None, None, None)
    path, offset = found
    # a return address: the call is the instruction before it
    call = offset - 1 if offset > 0 else offset
    file, line = _source_line(path, call)
    return Place(path, offset, function_at(path, call), file, line)


def _key_and_site(place: Place, host: str | None, kind: str = "native") -> tuple[tuple, dict]:
    frame = NativeFrame(function=place.function, object_path=place.object_path,
                        file=place.file, line=place.line)
    who = attribute([frame], host_objects=[host] if host else [])
    if place.file:
        at = f"{place.file}:{place.line}" if place.line is not None else place.file
    elif place.object_path:
        at = f"{object_name(place.object_path)}+{place.offset:#x}"
    else:
        at = "?"
    site = {"module": who.module, "kind": kind, "function": place.function or "???",
            "at": at, "object": object_name(place.object_path) or None,
            "attributed_by": who.reason}
    return (who.module, site["function"], at), site


def _grouped(run: "HostRun", warmup: int, table: str) -> dict[tuple, tuple[float, float, dict]]:
    """(module, function, at) -> (blocks, bytes, site fields) gained in the window."""
    growth = growth_by_caller(run, warmup, table)
    if not growth:
        return {}
    objects = ObjectMap(run.objects)
    groups: dict[tuple, tuple[float, float, dict]] = {}
    for pc, (blocks, size) in growth.items():
        if table == "pymem_sites" and pc == IN_CPYTHON_PC:
            key, site = (CPYTHON, IN_CPYTHON_SITE["function"], IN_CPYTHON_SITE["at"]), dict(IN_CPYTHON_SITE)
        else:
            key, site = _key_and_site(place_of(pc, objects), objects.host, KINDS[table])
        old_blocks, old_size, _ = groups.get(key, (0, 0, site))
        groups[key] = (old_blocks + blocks, old_size + size, site)
    return groups


def _span(run: "HostRun", warmup: int, table: str = "native_sites") -> int:
    """Cycles between the first and the last sites record of a run."""
    records = getattr(run, table)
    return max(records) - warmup if records else 0


def native_sites(case_run: "HostRun", control_run: "HostRun", warmup: int,
                 interpreter_cycles: int, table: str = "native_sites",
                 limit: int | None = MAX_SITES) -> list[dict]:
    """Callers whose live native memory grew over the window beyond the same
    caller's growth in the control, per interpreter cycle, most bytes first.
    `table` "pymem_sites": the same for PyMem blocks (sites of kind "pymem")."""
    if interpreter_cycles <= 0:
        return []
    case, control = _grouped(case_run, warmup, table), _grouped(control_run, warmup, table)
    # a case stopped early (adaptive cycles) spans fewer cycles than its
    # control: the control's growth is brought to the case's span
    scale = _span(case_run, warmup, table) / max(_span(control_run, warmup, table), 1)
    out = []
    for key, (blocks, size, site) in case.items():
        control_blocks, control_size, _ = control.get(key, (0, 0, None))
        control_blocks, control_size = control_blocks * scale, control_size * scale
        excess_blocks = (blocks - control_blocks) / interpreter_cycles
        excess_size = (size - control_size) / interpreter_cycles
        if excess_blocks <= 0 and excess_size <= 0:
            continue
        out.append({
            **site,
            "bytes_per_cycle": round(size / interpreter_cycles, 3),
            "blocks_per_cycle": round(blocks / interpreter_cycles, 3),
            "control_bytes_per_cycle": round(control_size / interpreter_cycles, 3),
            "control_blocks_per_cycle": round(control_blocks / interpreter_cycles, 3),
            "excess_bytes_per_cycle": round(excess_size, 3),
            "excess_blocks_per_cycle": round(excess_blocks, 3),
        })
    out.sort(key=by_excess)
    return out[:limit]


def by_excess(site: dict) -> tuple[float, float]:
    """Sort key of sites: most excess bytes a cycle first, then blocks."""
    return -site["excess_bytes_per_cycle"], -site["excess_blocks_per_cycle"]


#: sites attributed so are in the extension's own code (not in a library it
#: calls, nor in CPython)
OWN_CODE = ("extension", "PyInit")


def held_by(sites: list[dict]) -> dict[str, float]:
    """What the pymem sites hold a cycle beyond the control: in extensions'
    own code, and inside CPython (blocks with no caller outside it)."""
    held = {"own_blocks": 0.0, "own_bytes": 0.0, "cpython_blocks": 0.0, "cpython_bytes": 0.0}
    for site in sites:
        part = ("own" if site.get("attributed_by") in OWN_CODE
                else "cpython" if site.get("attributed_by") == "cpython" else None)
        if part:
            held[f"{part}_blocks"] += site["excess_blocks_per_cycle"]
            held[f"{part}_bytes"] += site["excess_bytes_per_cycle"]
    return {key: round(value, 3) for key, value in held.items()}


def _source_line(path: str, address: int) -> tuple[str | None, int | None]:
    """file:line of `address` in `path` from its debug info, via addr2line
    (binutils); (None, None) without debug info or without addr2line."""
    key = (path, address)
    if key not in _LINES:
        _LINES[key] = _addr2line(path, address)
    return _LINES[key]


_LINES: dict[tuple[str, int], tuple[str | None, int | None]] = {}


def _addr2line(path: str, address: int) -> tuple[str | None, int | None]:
    tool = shutil.which("addr2line")
    if not tool:
        return None, None
    try:
        proc = subprocess.run([tool, "-e", path, f"{address:#x}"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None, None
    first = proc.stdout.strip().splitlines()[:1]
    if proc.returncode != 0 or not first or first[0].startswith("??"):
        return None, None
    file, _, line = first[0].partition(":")
    number = line.split()[0] if line else ""
    return file, int(number) if number.isdigit() else None
