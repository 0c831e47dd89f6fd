"""The `bisect --json` objects: what a shrink or a git bisection found, as plain data.

Built here once so the terminal renderer (harness/report/bisect_text.py)
and `--json` show the same facts.
"""

from __future__ import annotations

from .ddmin import ShrinkOutcome, Trial


def _trial_json(trial: Trial) -> dict:
    probe = trial.representative
    return {"verdict": trial.verdict, "verdicts": trial.verdicts, "excess": probe.excess,
            "message": probe.message}


def shrink_report(kind: str, labels: list[str], outcome: ShrinkOutcome) -> dict:
    """kind, minimal, runs, original, result (+ flaky, cache_hits, rounds, wall_s)."""
    return {
        "kind": kind,
        "minimal": [labels[i] for i in outcome.minimal] if outcome.leaks else [],
        "runs": outcome.runs,
        "original": {"items": len(labels), **_trial_json(outcome.original)},
        "result": {"items": len(outcome.minimal) if outcome.leaks else 0, **_trial_json(outcome.result)},
        "flaky": [{"minimal": [labels[i] for i in t.key], "verdicts": t.verdicts} for t in outcome.flaky],
        "cache_hits": outcome.cache_hits,
        "rounds": outcome.rounds,
        "wall_s": round(outcome.wall_s, 2),
    }


def _step_json(step: dict | None) -> dict | None:
    if step is None:
        return None
    return {k: step.get(k) for k in ("commit", "subject", "verdict", "excess", "build_ok", "wall_s")}


def git_report(outcome) -> dict:
    """The first bad commit (or the candidates skipped commits leave), both sides and every step."""
    bad_step = outcome.step_for(outcome.first_bad) or (
        outcome.bad if outcome.first_bad == outcome.bad["commit"] else None)
    good_step = outcome.step_for(outcome.last_good)
    return {
        "kind": "git",
        "minimal": {"commit": outcome.first_bad, "subject": outcome.subject, "candidates": outcome.candidates},
        "runs": len(outcome.steps),
        "original": {"good": _step_json(outcome.good), "bad": _step_json(outcome.bad)},
        "result": {"first_bad": _step_json(bad_step), "last_good": _step_json(good_step),
                   "skipped": [s["commit"] for s in outcome.steps if s["exit"] == 125]},
        "steps": [_step_json(s) for s in outcome.steps],
        "wall_s": round(outcome.wall_s, 2),
    }
