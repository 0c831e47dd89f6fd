"""JSON report: one document with a summary, the results and CPython's own rows.

It is also the nightly baseline format: `load_results` reads it back, and
`--no-samples` drops the per-cycle samples (the bulk of a stdlib sweep), and
keeps only the top frames of crash and hang stacks, so a baseline stays small
enough to commit while keeping every verdict, number and crash signature.
"""

from __future__ import annotations

import json
from typing import Any

from .. import SCHEMA_VERSION, __version__
from ..results.load import REPORT_KIND, ResultSet
from ..results.summary import controls_sorted, module_name, summary_json, target_order


#: frames a slim baseline keeps of a crash's or hang's stacks: the signature
#: and the frames that name the culprit are at the top
SLIM_FRAMES = 8


def _strip(line: dict[str, Any], samples: bool) -> dict[str, Any]:
    if samples:
        return line
    slim = {k: v for k, v in line.items() if k != "samples"}
    for key in ("crash", "hang"):
        if isinstance(slim.get(key), dict):
            stack = dict(slim[key])
            stack["native_stack"] = (stack.get("native_stack") or [])[:SLIM_FRAMES]
            stack["python_stack"] = [dict(t, frames=t.get("frames", [])[:SLIM_FRAMES])
                                     for t in stack.get("python_stack") or [] if t.get("current")]
            slim[key] = stack
    return slim


def report_document(results: ResultSet, samples: bool = True) -> dict[str, Any]:
    cases = sorted(results.case_lines(), key=lambda l: (target_order(l), module_name(l), l["case"]))
    return {
        "schema": SCHEMA_VERSION,
        "kind": REPORT_KIND,
        "generator": f"leak-harness {__version__}",
        "sources": results.sources,
        "notes": results.notes,
        "summary": summary_json(cases),
        "results": [_strip(line, samples) for line in cases],
        "controls": [_strip(line, samples) for line in controls_sorted(results.control_lines())],
    }


def render_json(results: ResultSet, samples: bool = True) -> str:
    """Stable key order and one result per line: baselines diff well in git."""
    document = report_document(results, samples)
    head = {k: v for k, v in document.items() if k not in ("results", "controls")}
    text = json.dumps(head, indent=1)[:-2]   # reopen the object to append the lists
    for name in ("results", "controls"):
        items = ",\n  ".join(json.dumps(item, separators=(",", ":")) for item in document[name])
        text += f',\n "{name}": [\n  {items}\n ]' if items else f',\n "{name}": []'
    return text + "\n}\n"
