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
from .load import python_label
from .summary import excess_of, live_series, module_name

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

    None when the case has no per-cycle samples (a crash, or a JSON report
    written without samples).
    """
    cycles, blocks, size_bytes = live_series(case.get("samples") or [])
    if len(cycles) < 2:
        return None
    matplotlib, Figure, EngFormatter = _matplotlib()
    with matplotlib.rc_context(_SVG_RC):
        figure = Figure(figsize=(9.0, 2.9))
        axes_blocks, axes_bytes = figure.subplots(1, 2)
        control_series = live_series((control or {}).get("samples") or [])
        for axes, values, control_values, label in (
                (axes_blocks, blocks, control_series[1], "live blocks"),
                (axes_bytes, size_bytes, control_series[2], "live bytes")):
            warmup = int(case.get("warmup") or 0)
            if warmup:
                axes.axvspan(0, warmup, color="#eeeeee", label="warm-up")
            axes.plot(cycles, values, color=CASE_COLOUR, marker=".", label=module_name(case))
            if control_series[0]:
                axes.plot(control_series[0], control_values, color=CONTROL_COLOUR, linestyle="--",
                          marker=".", label="control (pass)")
            axes.set_xlabel("cycle")
            axes.set_ylabel(label)
            axes.grid(True, alpha=0.3)
            if axes is axes_bytes:
                axes.yaxis.set_major_formatter(EngFormatter(unit="B"))
        legend = axes_blocks.legend(loc="upper left", fontsize=8)
        for text in legend.get_texts():
            text.set_parse_math(False)   # a `$` in a case name is not TeX
        figure.suptitle(f"{module_name(case)} — Python {python_label(case['python'])}, "
                        f"{case.get('mode')}, {case.get('backend')}", parse_math=False)
        return _to_svg(figure, prefix)


def top_leakers_svg(leak_lines: list[dict[str, Any]], prefix: str, limit: int = 20) -> str | None:
    """Horizontal bars: excess bytes per cycle of the biggest leaks."""
    top = [line for line in leak_lines if excess_of(line, "bytes") is not None][:limit]
    if not top:
        return None
    matplotlib, Figure, EngFormatter = _matplotlib()
    with matplotlib.rc_context(_SVG_RC):
        figure = Figure(figsize=(9.0, 0.9 + 0.28 * len(top)))
        axes = figure.subplots()
        labels = [f"{module_name(line)}  ({python_label(line['python'])}, {line.get('mode')})"
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
