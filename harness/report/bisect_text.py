"""Terminal rendering of the bisect reports (harness/tools/bisect/report.py)."""

from __future__ import annotations

from rich.console import Console

from .numbers import fmt_bytes, fmt_number


def _fmt_excess(trial: dict) -> str:
    excess = trial.get("excess") or {}
    shown = {"blocks": lambda v: f"{fmt_number(v)} blocks", "bytes": fmt_bytes,
             "refs": lambda v: f"{fmt_number(v)} refs"}
    parts = [f"{shown[k](excess[k])}/cycle" for k in ("blocks", "bytes", "refs") if excess.get(k) is not None]
    return ", ".join(parts) or "-"


def render_shrink(console: Console, report: dict) -> None:
    original = report["original"]
    if not report["minimal"]:
        # a crash or an error is not "does not leak": whether it leaks is unknown
        how = ("does not leak" if original["verdict"] in ("clean", "unsupported")
               else "could not be measured")
        console.print(f"the original ({original['items']} {report['kind']}) {how}: verdict "
                      f"{original['verdict']} ({_fmt_excess(original)}); nothing to shrink")
        if original["verdict"] not in ("clean", "unsupported"):
            console.print(original["message"], markup=False)
        return
    console.print(f"minimal leaking {report['kind']}: {report['result']['items']} of {original['items']}",
                  style="bold")
    for label in report["minimal"]:
        console.print("    " + label.replace("\n", "\n    "), markup=False, highlight=False)
    console.print(f"leak per cycle: original {_fmt_excess(original)}; minimal {_fmt_excess(report['result'])}")
    console.print(f"{report['runs']} runs ({report['cache_hits']} cache hits, {report['rounds']} rounds) "
                  f"in {report['wall_s']:.1f} s")
    for flaky in report["flaky"]:
        console.print(f"flaky: {len(flaky['minimal'])} {report['kind']} gave {flaky['verdicts']}", style="yellow")


def render_git(console: Console, report: dict) -> None:
    minimal, result = report["minimal"], report["result"]
    if minimal["commit"]:
        console.print(f"first bad commit: {minimal['commit']} {minimal['subject']}", style="bold", markup=False)
    else:
        console.print("skipped commits leave the first bad commit open; it is one of:", style="bold")
        for commit in minimal["candidates"]:
            console.print(f"    {commit}")
    for side, label in (("last_good", "good side"), ("first_bad", "bad side")):
        step = result[side]
        if step:
            console.print(f"{label}: {step['commit'][:12]} {step['verdict']:5} {_fmt_excess(step)}  "
                          f"({step['subject']})", markup=False)
    for step in report["steps"]:
        console.print(f"  step {step['commit'][:12]} {step['verdict']:12} {_fmt_excess(step)} "
                      f"{step['wall_s']:.1f} s  {step['subject']}", markup=False, highlight=False)
    console.print(f"{report['runs']} steps in {report['wall_s']:.1f} s; bisect state reset")
