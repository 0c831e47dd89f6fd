"""What every report format shows, computed once: counts, ranking, problem rows, series.

Formats differ in markup only; which rows appear and in which order is
decided here so Markdown, HTML, JUnit and JSON never disagree.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..result import VERDICTS
from .load import python_label

#: Verdicts that mean the case did not run to a judgement.
PROBLEM_VERDICTS = ("crash", "timeout", "error")
MODE_ORDER = ("finalize", "subinterpreter", "legacy-subinterpreter")


def _version_tuple(label: str) -> tuple:
    parts = label.split("-")[0].split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts) + (label,)


def target_order(line: dict[str, Any]) -> tuple:
    """Sort key: python version numerically, then mode in lifecycle order, then backend."""
    mode = line.get("mode", "")
    mode_rank = MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER)
    return (_version_tuple(python_label(line["python"])), mode_rank, line.get("backend", ""))


def module_name(line: dict[str, Any]) -> str:
    return line.get("module") or line.get("case") or "?"


def row_label(line: dict[str, Any]) -> str:
    """How a row is named: the module, plus the case when it is more than `import MODULE`."""
    module = module_name(line)
    case = line.get("case") or ""
    return module if case in ("", module, f"{module}-import") else f"{module} ({case})"


def excess_of(line: dict[str, Any], counter: str) -> float | None:
    return (line.get("excess") or {}).get(counter)


def verdict_counts(case_lines: list[dict[str, Any]]) -> list[tuple[str, str, Counter]]:
    """[(python label, mode, Counter of verdicts)] in version and mode order."""
    groups: dict[tuple[str, str], Counter] = {}
    firsts: dict[tuple[str, str], dict] = {}
    for line in case_lines:
        key = (python_label(line["python"]), line.get("mode", "?"))
        groups.setdefault(key, Counter())[line["verdict"]] += 1
        firsts.setdefault(key, line)
    ordered = sorted(groups, key=lambda k: target_order(firsts[k]))
    return [(python, mode, groups[(python, mode)]) for python, mode in ordered]


def total_counts(case_lines: list[dict[str, Any]]) -> Counter:
    return Counter(line["verdict"] for line in case_lines)


def ranked(case_lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Judged rows (leak, clean), biggest excess bytes per cycle first, leaks before clean."""
    judged = [line for line in case_lines if line["verdict"] in ("leak", "clean")]
    return sorted(judged, key=lambda line: (
        line["verdict"] != "leak", -(excess_of(line, "bytes") or 0.0),
        module_name(line), target_order(line)))


def leaks(case_lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in ranked(case_lines) if line["verdict"] == "leak"]


def with_verdicts(case_lines: list[dict[str, Any]], verdicts: tuple[str, ...]) -> list[dict[str, Any]]:
    chosen = [line for line in case_lines if line["verdict"] in verdicts]
    return sorted(chosen, key=lambda line: (module_name(line), target_order(line)))


def controls_sorted(control_lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(control_lines, key=target_order)


def first_line(message: str | None, limit: int = 200) -> str:
    lines = (message or "").strip().splitlines()
    text = lines[-1] if lines and lines[0].startswith("Traceback") else (lines[0] if lines else "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def live_series(samples: list[dict[str, Any]]) -> tuple[list[int], list[int], list[int]]:
    """(cycle, live blocks, live bytes) per sample: MEM + OBJ domains, the exact ones."""
    cycles, blocks, size_bytes = [], [], []
    for sample in samples:
        if "obj_blocks" not in sample:
            continue
        cycles.append(int(sample.get("cycle", len(cycles))))
        blocks.append(int(sample.get("mem_blocks", 0)) + int(sample["obj_blocks"]))
        size_bytes.append(int(sample.get("mem_bytes", 0)) + int(sample.get("obj_bytes", 0)))
    return cycles, blocks, size_bytes


def summary_json(case_lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary block of the JSON report."""
    totals = total_counts(case_lines)
    return {
        "total": len(case_lines),
        "by_verdict": {v: totals[v] for v in VERDICTS},
        "by_target": [{"python": python, "mode": mode, "counts": {v: counts[v] for v in VERDICTS}}
                      for python, mode, counts in verdict_counts(case_lines)],
    }
