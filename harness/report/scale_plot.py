"""The scaling plot: interpreter cycles per second against threads.

PNG through matplotlib's Agg backend (no display needed); HTML is one
self-contained page (the plot inlined as SVG, the table beside it), so it
can be mailed or attached to a CI run without its files.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

from ..errors import HarnessError
from ..tools.scale import ScaleTable


def write_plot(tables: list[ScaleTable], path: str | Path) -> Path:
    """Write the plot of `tables` (one line each) to `path` (.png or .html)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise HarnessError(f"--plot wants a .png or .html file, not {path.name!r}")
    figure = _figure(tables)
    try:
        if suffix == ".png":
            figure.savefig(path, format="png", dpi=120, bbox_inches="tight")
        else:
            svg = io.StringIO()
            figure.savefig(svg, format="svg", bbox_inches="tight")
            path.write_text(_page(tables, svg.getvalue()), encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        import matplotlib.pyplot as plt
        plt.close(figure)
    return path


def _figure(tables: list[ScaleTable]):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise HarnessError("--plot needs matplotlib: pip install matplotlib") from None
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    most = max((p.threads for t in tables for p in t.points), default=1)
    for table in tables:
        points = [p for p in table.points if p.cycles_per_s is not None]
        label = f"{table.case} (Python {table.python['version']})"
        line, = axes.plot([p.threads for p in points], [p.cycles_per_s for p in points],
                          marker="o", label=label)
        base = table.base_rate()
        if base:  # what perfect scaling would give: N times one thread
            axes.plot([1, most], [base, base * most], linestyle=":", color=line.get_color(),
                      alpha=0.6, label=f"{table.case}: ideal (N x 1 thread)")
    axes.set_xlabel("threads (one isolated subinterpreter each)")
    axes.set_ylabel("interpreter cycles per second")
    axes.set_xticks(sorted({p.threads for t in tables for p in t.points}))
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    host = ", ".join(sorted({t.host_mode for t in tables}))
    axes.set_title(f"create -> run -> end, per thread ({host} host)", fontsize="medium")
    return figure


def _page(tables: list[ScaleTable], svg: str) -> str:
    rows = []
    for table in tables:
        for p in table.points:
            ratio, eff = table.ratio(p), table.efficiency(p)
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                table.case, table.python["version"], p.threads,
                "-" if p.cycles_per_s is None else f"{p.cycles_per_s:.1f}",
                "-" if ratio is None else f"{ratio:.2f}x",
                "-" if eff is None else f"{eff:.0%}",
                p.problem or "")) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in
                   ("case", "python", "threads", "cycles/s", "vs 1 thread", "efficiency", "problem"))
    svg_body = svg[svg.find("<svg"):]  # drop the XML prolog: inline SVG in HTML5
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>leak-harness scale</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}</style></head><body>"
        f"<h1>Isolated subinterpreters: throughput against threads</h1>{svg_body}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>\n"
    )
