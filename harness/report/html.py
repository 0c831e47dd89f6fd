"""HTML report: one self-contained file (inline CSS, JS and SVG plots; no network at view time).

Tables sort on a header click, and a link can carry a sort
(`report.html#sort=module-table:-bytes`, `-` = descending) so a CI comment
can point at "biggest first". Every module name, case name and message is
escaped with html.escape: they come from files and tracebacks.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .. import __version__
from ..result import VERDICTS
from .crashes import crash_groups, groups_headline, modules_text, stack_text
from ..results.load import ResultSet, python_label
from .plots import growth_plot_svg, top_leakers_svg
from ..results.summary import (controls_sorted, excess_of, first_line, leaks, module_name, ranked,
                      row_label, total_counts, verdict_counts, with_verdicts)
from .numbers import fmt_bytes, fmt_number

#: Growth plots drawn at most (the biggest leaks); each is ~30 kB of SVG.
MAX_GROWTH_PLOTS = 40

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.v-leak{color:#b00;font-weight:bold}.v-clean{color:#080}.v-unsupported{color:#a60}
.v-crash,.v-timeout,.v-error{color:#808}
pre{white-space:pre-wrap;margin:0;font-size:12px;max-width:70em}
figure{margin:0 0 1.5em}figcaption{color:#555}
#script-errors:empty{display:none}#script-errors{color:#b00;border:2px solid #b00;padding:.5em}
"""

# Records script errors in the page itself, so a headless browser's DOM dump
# shows them (and a reader sees them); installed before any other script.
_ERROR_SINK = """
window.addEventListener('error', function (e) {
  var sink = document.getElementById('script-errors');
  var text = 'script error: ' + e.message + ' (' + e.lineno + ':' + e.colno + ')';
  if (sink) { sink.textContent += text + '\\n'; } else { (window.pendingErrors = window.pendingErrors || []).push(text); }
});
"""

_SORT_SCRIPT = """
(function () {
  function value(cell) {
    var raw = cell.getAttribute('data-sort');
    if (raw === null) raw = cell.textContent;
    if (raw === '') return null;                       // nothing measured: always last
    var num = Number(raw);
    return isNaN(num) ? raw.toLowerCase() : num;
  }
  function sortTable(table, column, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[column]), y = value(b.cells[column]);
      if (x === null || y === null) return (x === null) - (y === null);
      if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;
      var order = x < y ? -1 : (x > y ? 1 : 0);
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute('aria-sort', i === column ? (descending ? 'descending' : 'ascending') : 'none');
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener('click', function () {
        sortTable(table, i, th.getAttribute('aria-sort') === 'ascending');
      });
    });
    table.setAttribute('data-sortable', 'ready');
  });
  var wanted = /(?:^#|&)sort=([\\w-]+):(-?)([\\w-]+)/.exec(window.location.hash);
  if (wanted) {
    var table = document.getElementById(wanted[1]);
    var th = table && table.querySelector('th[data-key="' + wanted[3] + '"]');
    if (th) sortTable(table, th.cellIndex, wanted[2] === '-');
  }
  var sink = document.getElementById('script-errors');
  (window.pendingErrors || []).forEach(function (text) { sink.textContent += text + '\\n'; });
  document.body.setAttribute('data-scripts', 'done');
})();
"""


def _th(label: str, key: str) -> str:
    return f'<th data-key="{escape(key)}" aria-sort="none">{escape(label)}</th>'


def _num(value: float | None, shown: str) -> str:
    sort = "" if value is None else repr(float(value))
    return f'<td class="num" data-sort="{sort}">{escape(shown)}</td>'


def _text(value: Any) -> str:
    return f"<td>{escape(str(value))}</td>"


def _verdict(verdict: str) -> str:
    return f'<td class="v-{escape(verdict)}">{escape(verdict)}</td>'


def _table(table_id: str, columns: list[tuple[str, str]], rows: list[str]) -> str:
    head = "".join(_th(label, key) for label, key in columns)
    return (f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _summary_table(cases: list[dict[str, Any]]) -> str:
    rows = []
    for python, mode, counts in verdict_counts(cases):
        cells = _text(python) + _text(mode) + "".join(
            _num(counts[v], str(counts[v])) for v in VERDICTS) + _num(sum(counts.values()),
                                                                       str(sum(counts.values())))
        rows.append(f"<tr>{cells}</tr>")
    columns = [("python", "python"), ("mode", "mode")] + [(v, v) for v in VERDICTS] + [("total", "total")]
    return _table("summary-table", columns, rows)


def _module_table(cases: list[dict[str, Any]], plotted: dict[int, int] | None = None) -> str:
    """`plotted`: id(line) -> its growth plot's number, for the verdict to link to it."""
    rows = []
    plotted = plotted or {}
    for line in ranked(cases):
        interned = (line.get("evidence") or {}).get("interned_strings_per_cycle")
        rows.append(
            f'<tr data-module="{escape(module_name(line))}">' + _text(row_label(line))
            + _text(python_label(line["python"])) + _text(line["mode"]) + _text(line["backend"])
            + (_verdict(line["verdict"]) if id(line) not in plotted else
               f'<td class="v-{escape(line["verdict"])}"><a href="#growth-{plotted[id(line)]}" '
               f'title="per-cycle series">{escape(line["verdict"])}</a></td>')
            + _num(excess_of(line, "blocks"), fmt_number(excess_of(line, "blocks")))
            + _num(excess_of(line, "bytes"), fmt_bytes(excess_of(line, "bytes")))
            + _num(excess_of(line, "refs"), fmt_number(excess_of(line, "refs")))
            + _num(interned, fmt_number(interned))
            + _text(first_line(line.get("message"), 160)) + "</tr>")
    columns = [("module", "module"), ("python", "python"), ("mode", "mode"), ("backend", "backend"),
               ("verdict", "verdict"), ("blocks/cycle", "blocks"), ("bytes/cycle", "bytes"),
               ("refs/cycle", "refs"), ("interned/cycle", "interned"), ("message", "message")]
    return _table("module-table", columns, rows)


def _control_table(controls: list[dict[str, Any]]) -> str:
    rows = []
    for control in controls_sorted(controls):
        per_cycle = control.get("per_cycle") or {}
        rows.append("<tr>" + _text(python_label(control["python"])) + _text(control["mode"])
                    + _text(control["backend"])
                    + _num(per_cycle.get("blocks"), fmt_number(per_cycle.get("blocks")))
                    + _num(per_cycle.get("bytes"), fmt_bytes(per_cycle.get("bytes")))
                    + _num(per_cycle.get("refs"), fmt_number(per_cycle.get("refs")))
                    + _num(per_cycle.get("rss"), fmt_bytes(per_cycle.get("rss"))) + "</tr>")
    columns = [("python", "python"), ("mode", "mode"), ("backend", "backend"),
               ("blocks/cycle", "blocks"), ("bytes/cycle", "bytes"), ("refs/cycle", "refs"),
               ("rss/cycle", "rss")]
    return _table("control-table", columns, rows)


def _problem_text(line: dict[str, Any]) -> str:
    stacks = stack_text(line.get("crash") or line.get("hang"))
    return "\n\n".join(t for t in ((line.get("message") or "").strip(), stacks) if t)


def _problem_table(table_id: str, chosen: list[dict[str, Any]]) -> str:
    rows = [f'<tr data-module="{escape(module_name(line))}">' + _text(row_label(line))
            + _text(python_label(line["python"])) + _text(line["mode"]) + _text(line["backend"])
            + _verdict(line["verdict"])
            + f"<td><pre>{escape(_problem_text(line))}</pre></td></tr>"
            for line in chosen]
    columns = [("module", "module"), ("python", "python"), ("mode", "mode"),
               ("backend", "backend"), ("verdict", "verdict"), ("message", "message")]
    return _table(table_id, columns, rows)


def _crash_group_table(groups) -> str:
    rows = ["<tr>" + f"<td><code>{escape(g.signature)}</code></td>" + _num(len(g.lines), str(len(g.lines)))
            + _text(modules_text(g.modules, 30)) + _text(", ".join(g.blamed)) + _text(g.without_hook)
            + "</tr>" for g in groups]
    columns = [("signature", "signature"), ("crashes", "crashes"), ("modules", "modules"),
               ("blamed", "blamed"), ("without hook", "without-hook")]
    return _table("crash-signature-table", columns, rows)


def _growth_plots(results: ResultSet, leaking: list[dict[str, Any]]) -> list[str]:
    parts = []
    for number, line in enumerate(leaking[:MAX_GROWTH_PLOTS], 1):
        svg = growth_plot_svg(line, results.control_for(line), prefix=f"growth{number}")
        what = (f"{row_label(line)} — Python {python_label(line['python'])}, {line['mode']}, "
                f"{line['backend']}: {fmt_number(excess_of(line, 'blocks'))} blocks, "
                f"{fmt_bytes(excess_of(line, 'bytes'))} per cycle over the control")
        body = svg if svg else "<p>(no per-cycle samples in these results)</p>"
        parts.append(f'<figure class="growth-plot" id="growth-{number}" '
                     f'data-module="{escape(module_name(line))}">'
                     f"{body}<figcaption>{escape(what)}</figcaption></figure>")
    if len(leaking) > MAX_GROWTH_PLOTS:
        parts.append(f"<p>{len(leaking) - MAX_GROWTH_PLOTS} smaller leaks not plotted.</p>")
    return parts


def render_html(results: ResultSet, title: str = "leak-harness report") -> str:
    """The whole report as one HTML document."""
    cases = results.case_lines()
    totals = total_counts(cases)
    leaking = leaks(cases)
    counts_text = ", ".join(f"{totals[v]} {v}" for v in VERDICTS if totals[v]) or "none"
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="totals">{len(cases)} results: {escape(counts_text)}. Sources: '
            f"{escape(', '.join(results.sources))}. leak-harness {escape(__version__)}.</p>"]
    body += [f'<p class="note">note: {escape(note)}</p>' for note in results.notes]
    body += ['<section id="summary"><h2>Summary</h2>', _summary_table(cases), "</section>"]
    body.append('<section id="top-leakers"><h2>Top leaks</h2>')
    chart = top_leakers_svg(leaking, prefix="top")
    body.append(f'<figure class="bar-chart">{chart}</figure>' if chart else "<p>No leaks.</p>")
    body.append("</section>")
    body += ['<section id="modules"><h2>Per module: excess over the pass control, per cycle</h2>',
             _module_table(cases, {id(line): n for n, line in
                                   enumerate(leaking[:MAX_GROWTH_PLOTS], 1)}), "</section>"]
    body += ["<section id=\"cpython\"><h2>CPython's own growth per cycle (pass control)</h2>",
             _control_table(results.control_lines()), "</section>"]
    if leaking:
        body.append('<section id="growth"><h2>Live memory per cycle: leaks against their control</h2>')
        body += _growth_plots(results, leaking)
        body.append("</section>")
    groups = crash_groups(cases)
    if groups:
        body += [f'<section id="crash-signatures"><h2>Crashes by signature ({groups_headline(groups)})</h2>',
                 _crash_group_table(groups), "</section>"]
    for section_id, heading, verdicts in (("problems", "Crashes, timeouts and errors",
                                           ("crash", "timeout", "error")),
                                          ("unsupported", "Unsupported", ("unsupported",))):
        chosen = with_verdicts(cases, verdicts)
        if chosen:
            body += [f'<section id="{section_id}"><h2>{heading} ({len(chosen)})</h2>',
                     _problem_table(f"{section_id}-table", chosen), "</section>"]
    body.append('<div id="script-errors"></div>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><script>{_ERROR_SINK}</script>"
            f"<style>{_STYLE}</style></head>\n<body>\n" + "\n".join(body)
            + f"\n<script>{_SORT_SCRIPT}</script>\n</body></html>\n")
