"""JSON report: one document with a summary, the results and CPython's own rows.

It is also the nightly baseline format: `load_results` reads it back, and
`--no-samples` drops the per-cycle samples (the bulk of a stdlib sweep) so a
baseline stays small enough to commit while keeping every verdict and number.
"""

from __future__ import annotations

import json
from typing import Any

from .. import SCHEMA_VERSION, __version__
from ..results.load import REPORT_KIND, ResultSet
from ..results.summary import controls_sorted, module_name, summary_json, target_order


def _strip(line: dict[str, Any], samples: bool) -> dict[str, Any]:
    return line if samples else {k: v for k, v in line.items() if k != "samples"}


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
