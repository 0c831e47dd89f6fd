"""bench/sweep_time.py's paired figures add up, on a real (small) sweep.

A benchmark is not a test of speed; this checks its accounting: every
host it started is booked to one part, the parts sum to the ratio it
prints, and the adaptive and fixed passes judged the same cases.
"""

from __future__ import annotations

import json
import subprocess
import sys

from fixtures.targets import REPO_ROOT


def test_paired_sweep_parts_add_up_to_its_ratio(target_for):
    target = target_for("3.12")
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "sweep_time.py"), "--python", target.executable,
         "--module", "json", "--module", "textwrap", "--cycles", "8", "--warmup", "2",
         "--adaptive", "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["method"] == "paired" and figures["results"] == 4   # 2 modules x 2 modes
    assert figures["floor_cpu_s"] > 0
    parts = figures["overhead_parts"]
    assert parts["case hosts"] > 0 and parts["harness process"] > 0
    assert {"control hosts", "probe hosts"} <= set(parts)
    # every part is booked once: they add up to the ratio (each is rounded to 0.001)
    assert abs(sum(parts.values()) - figures["overhead_cpu_ratio"]) <= 0.001 * len(parts) + 0.002
    # both passes ran one case host per job, so the verdict diff compares like with like
    assert sum(figures["verdicts"].values()) == 4
    assert figures["fixed"]["hosts_by_role"]["case"]["hosts"] == 4
    assert figures["adaptive"]["hosts_by_role"]["case"]["hosts"] == 4
    assert figures["verdict_diff"] == []
    # json and textwrap are clean in both modes: adaptive cycles stopped them early
    assert figures["stopped_early"] == 4
    assert 0 < figures["adaptive_cpu_ratio"] < 1
    # the wall time of each job's steps, summed: the done-when's own measure
    assert figures["fixed"]["job_wall_s"] > figures["adaptive"]["job_wall_s"] > 0
    assert 0 < figures["adaptive_job_wall_ratio"] < 1
    # how near the earliest stops the verdict rule allows
    assert 0 < figures["rule_bound_case_wall_ratio"] < 1
    assert 0 < figures["achieved_case_wall_ratio"] < 1


def test_the_rule_bound_saves_only_what_a_clean_case_runs_after_its_earliest_stop():
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    from sweep_time import rule_bound

    def row(verdict, wall_s):
        # 5 warm-up + 20 cycles, 10 ms each, after 20 ms of start-up
        samples = [{"cycle": c, "t_ms": 20.0 + 10.0 * c} for c in range(26)]
        return {"role": "case", "verdict": verdict, "wall_s": wall_s, "warmup": 5, "cycles": 20,
                "samples": samples}

    # first_decidable(20) = 7: the clean case could stop after cycle 12,
    # saving cycles 13-25 (130 ms), and so could a crash at the last end;
    # the leak runs as it did, and so does a crash in cycle 3
    early_crash = dict(row("crash", 0.07), samples=row("crash", 0)["samples"][:3])
    fixed = [row("clean", 0.3), row("leak", 0.3), row("crash", 0.3), early_crash]
    adaptive = [row("clean", 0.18), row("leak", 0.3), row("crash", 0.18), early_crash]
    figures = rule_bound(fixed, adaptive)
    assert figures["rule_bound_case_wall_ratio"] == round((0.97 - 2 * 0.13) / 0.97, 3)
    assert figures["achieved_case_wall_ratio"] == round(0.73 / 0.97, 3)
