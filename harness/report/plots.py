"""Plots for the HTML report, drawn by matplotlib as inline SVG.

SVG inline keeps the report one self-contained file that needs no network
and no plotting code at view time, and stays sharp when zoomed. Text stays
text (`svg.fonttype: none`), so module names in plots are searchable and
small. matplotlib gives every SVG element ids such as `patch_1`; several
figures in one page would share them, so each figure's ids get a prefix.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ..errors import HarnessError
from ..results.load import python_label
from ..results.summary import excess_of, live_series, row_label

CASE_COLOUR = "#c0392b"
CONTROL_COLOUR = "#7f8c8d"
_SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "leak-harness", "font.size": 9}
_ID_REFS = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.ticker import EngFormatter
    except ImportError:
        raise HarnessError("the HTML report needs matplotlib: pip install matplotlib") from None
    return matplotlib, Figure, EngFormatter


def _to_svg(figure: Any, prefix: str) -> str:
    """The figure as an <svg> element (no XML prolog), its ids prefixed to be page-unique."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    return _ID_REFS.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)


def growth_plot_svg(case: dict[str, Any], control: dict[str, Any] | None, prefix: str) -> str | None:
    """Live blocks and bytes after each cycle, the case against its `pass` control.

    Top row: both series as measured. CPython's own growth (1,777 blocks per
    cycle on 3.12.1 finalize) dwarfs a leak of 20 blocks, so the lines look
    alike; the bottom row plots case minus control at each cycle, where the
    module's own leak is the slope. None when the case has no per-cycle
    samples (a crash, or a JSON report written without samples).
    """
    cycles, blocks, size_bytes = live_series(case.get("samples") or [])
    if len(cycles) < 2:
        return None
    matplotlib, Figure, EngFormatter = _matplotlib()
    control_cycles, control_blocks, control_bytes = live_series((control or {}).get("samples") or [])
    by_cycle = {c: (b, n) for c, b, n in zip(control_cycles, control_blocks, control_bytes)}
    shared = [i for i, c in enumerate(cycles) if c in by_cycle]
    warmup = int(case.get("warmup") or 0)
    with matplotlib.rc_context(_SVG_RC):
        figure = Figure(figsize=(9.0, 5.2 if shared else 2.9), layout="constrained")
        grid = figure.subplots(2 if shared else 1, 2, squeeze=False)
        for column, (values, control_values, label) in enumerate((
                (blocks, control_blocks, "live blocks"), (size_bytes, control_bytes, "live bytes"))):
            axes = grid[0][column]
            axes.plot(cycles, values, color=CASE_COLOUR, marker=".", label=row_label(case))
            if control_cycles:
                axes.plot(control_cycles, control_values, color=CONTROL_COLOUR, linestyle="--",
                          marker=".", label="control (pass)")
            axes.set_ylabel(label)
            if shared:
                excess = grid[1][column]
                excess.plot([cycles[i] for i in shared],
                            [values[i] - by_cycle[cycles[i]][column] for i in shared],
                            color=CASE_COLOUR, marker=".")
                excess.axhline(0, color=CONTROL_COLOUR, linestyle="--", linewidth=1)
                excess.set_ylabel(f"{label}: case − control")
            for axes in [row[column] for row in grid]:
                if warmup:
                    axes.axvspan(0, warmup, color="#eeeeee", label="warm-up" if axes is grid[0][0] else None)
                axes.grid(True, alpha=0.3)
                if column == 1:
                    axes.yaxis.set_major_formatter(EngFormatter(unit="B"))
            grid[-1][column].set_xlabel("cycle")
        legend = grid[0][0].legend(loc="upper left", fontsize=8)
        for text in legend.get_texts():
            text.set_parse_math(False)   # a `$` in a case name is not TeX
        figure.suptitle(f"{row_label(case)} — Python {python_label(case['python'])}, "
                        f"{case.get('mode')}, {case.get('backend')}", parse_math=False)
        return _to_svg(figure, prefix)


def top_leakers_svg(leak_lines: list[dict[str, Any]], prefix: str, limit: int = 20) -> str | None:
    """Horizontal bars: excess bytes per cycle of the biggest leaks."""
    top = [line for line in leak_lines if excess_of(line, "bytes") is not None][:limit]
    if not top:
        return None
    matplotlib, Figure, EngFormatter = _matplotlib()
    with matplotlib.rc_context(_SVG_RC):
        figure = Figure(figsize=(9.0, 0.9 + 0.28 * len(top)), layout="constrained")
        axes = figure.subplots()
        labels = [f"{row_label(line)}  ({python_label(line['python'])}, {line.get('mode')})"
                  for line in top]
        values = [excess_of(line, "bytes") for line in top]
        positions = list(range(len(top)))
        axes.barh(positions, values, color=CASE_COLOUR)
        axes.set_yticks(positions, labels=labels)
        for text in axes.get_yticklabels():
            text.set_parse_math(False)
        axes.invert_yaxis()   # biggest on top
        axes.xaxis.set_major_formatter(EngFormatter(unit="B"))
        axes.set_xlabel("excess bytes per cycle over the pass control")
        axes.grid(True, axis="x", alpha=0.3)
        axes.set_title(f"Top {len(top)} leaks by bytes per cycle")
        return _to_svg(figure, prefix)
