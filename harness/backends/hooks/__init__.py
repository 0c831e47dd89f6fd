"""What the in-process backends (tracemalloc, memray) share.

Their hook sources (`tracemalloc_hook.py`, `memray_hook.py`) run in the
target's main interpreter through the host's --main-hook: they are read as
text and written into a run's work directory with their settings prepended
(`hook_source`); they import nothing from the harness, which the target
cannot import.  Also here: the modes both can measure (`refuse_mode`), the
per-cycle series they hand the verdict (`padded`), and the per-module
sites they report (`group_sites`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ModeUnavailableError

if TYPE_CHECKING:
    from ...settings import RunSettings

#: tracebacks of the hook's own frames carry this file name, so the
#: backends can drop them (the host runs the file through PyRun_String,
#: whose frames would otherwise say "<string>", like the case's)
HOOK_FILENAME = "<leak-harness-hook>"
#: stacks shown per site, sites per result
TOP_STACKS = 3
MAX_SITES = 20


def hook_source(name: str, settings: dict) -> str:
    """The hook file's text: LH_SETTINGS, then the body compiled under HOOK_FILENAME."""
    body = (Path(__file__).parent / f"{name}.py").read_text()
    return (f"LH_SETTINGS = {json.dumps(settings)!r}\n"
            f"exec(compile({body!r}, {HOOK_FILENAME!r}, 'exec'), globals())\n")


def refuse_mode(backend: str, settings: "RunSettings") -> None:
    """Finalize mode cannot be measured from the main interpreter: it ends
    it every cycle (the host refuses --main-hook there) and tracing state
    does not survive Py_FinalizeEx."""
    if settings.mode == "finalize":
        raise ModeUnavailableError(
            f"the {backend} backend cannot measure finalize mode: it measures from the main "
            f"interpreter, which finalize mode ends every cycle (its tracing does not survive "
            f"Py_FinalizeEx); use --mode subinterpreter or legacy-subinterpreter")
    if settings.host == "python":
        raise ModeUnavailableError(f"the {backend} backend needs the C host (--host c or auto)")


def padded(values_by_cycle: dict[int, float], last_cycle: int) -> list[float]:
    """One value per sample (cycles 0..last): the cycles before the first
    measured one repeat its value (the verdict drops them as warm-up)."""
    first = min(values_by_cycle)
    out, current = [], values_by_cycle[first]
    for cycle in range(0, last_cycle + 1):
        current = values_by_cycle.get(cycle, current)
        out.append(float(current))
    return out


@dataclass
class Group:
    """Allocations still alive at the end, made in the measured cycles, of one module."""

    bytes: float = 0.0
    blocks: float = 0.0
    stacks: list[tuple[float, float, list[dict]]] = field(default_factory=list)


def add_to_group(groups: dict[str, Group], module: str, size: float, blocks: float,
                 frames: list[dict]) -> None:
    group = groups.setdefault(module, Group())
    group.bytes += size
    group.blocks += blocks
    group.stacks.append((size, blocks, frames))


def group_sites(case: dict[str, Group], control: dict[str, Group], cycles: int,
                kind: str) -> list[dict]:
    """Sites, most excess bytes first: each module's growth per cycle in the
    case, the same module's in the `pass` control, and the top stacks."""
    sites = []
    for module, group in case.items():
        other = control.get(module, Group())
        top = sorted(group.stacks, key=lambda s: -s[0])[:TOP_STACKS]
        sites.append({
            "module": module,
            "kind": kind,
            "bytes_per_cycle": round(group.bytes / cycles, 3),
            "blocks_per_cycle": round(group.blocks / cycles, 3),
            "control_bytes_per_cycle": round(other.bytes / cycles, 3),
            "control_blocks_per_cycle": round(other.blocks / cycles, 3),
            "excess_bytes_per_cycle": round((group.bytes - other.bytes) / cycles, 3),
            "excess_blocks_per_cycle": round((group.blocks - other.blocks) / cycles, 3),
            "top_stacks": [{"bytes_per_cycle": round(size / cycles, 3),
                            "blocks_per_cycle": round(blocks / cycles, 3),
                            "frames": frames} for size, blocks, frames in top if size > 0],
        })
    sites.sort(key=lambda s: (-s["excess_bytes_per_cycle"], s["module"]))
    return sites[:MAX_SITES]
