"""bench/versus.py: two installations alternated on one sweep, their verdicts diffed.

A benchmark is not a test of speed; this checks what it reports: the
rounds it ran, ratios of the runs it timed, and a verdict diff that is
empty for two equal sides and names the case where a side differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fixtures.targets import REPO_ROOT

VERSUS = REPO_ROOT / "bench" / "versus.py"
OUR_CLI = f"{sys.executable} -m harness"


def versus(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VERSUS), *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=timeout)


def fake_cli(tmp_path, verdict: str | None, version: str = "3.12.1") -> str:
    """A stand-in CLI: writes one json finalize row of Python `version` with
    `verdict` (no row at all for None)."""
    script = tmp_path / "fake-leak-harness"
    row = {"schema": 1, "case": "json-import", "module": "json", "mode": "finalize",
           "python": {"version": version, "executable": "x", "debug": False},
           "backend": "counters", "verdict": verdict, "role": "case"}
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "out = sys.argv[sys.argv.index('--out') + 1]\n"
        + (f"open(out, 'a').write({json.dumps(json.dumps(row))} + '\\n')\n" if verdict else "")
        + "sys.stderr.write('fake: nothing to do\\n')\n")
    os.chmod(script, 0o755)
    return str(script)


def test_two_equal_sides_agree_and_every_round_is_timed(target_for):
    target = target_for("3.12")
    proc = versus("--before", OUR_CLI, "--after", OUR_CLI, "--python", target.executable,
                  "--module", "json", "--rounds", "2", "--json",
                  "--", "--mode", "finalize", "--cycles", "4", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["verdict_diff"] == [] and figures["verdicts_compared"] == 1
    for side in ("before", "after"):
        assert len(figures[side]["wall_s"]) == 2 and min(figures[side]["cpu_s"]) > 0
    assert len(figures["wall_ratio_rounds"]) == 2 and figures["wall_ratio"] > 0
    assert figures["sweep_args"][-6:] == ["--mode", "finalize", "--cycles", "4", "--warmup", "1"]


def test_a_verdict_that_differs_is_in_the_diff(tmp_path, target_for):
    target = target_for("3.12")
    proc = versus("--before", fake_cli(tmp_path, "leak", target.version), "--after", OUR_CLI,
                  "--python", target.executable, "--module", "json", "--rounds", "1", "--json",
                  "--", "--mode", "finalize", "--cycles", "4", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)["verdict_diff"]
    assert diff == [{"python": target.version, "module": "json", "mode": "finalize",
                     "before": "leak", "after": "clean"}]


def test_a_side_that_cannot_run_is_one_line_and_exit_2(tmp_path):
    proc = versus("--before", str(tmp_path / "missing"), "--after", OUR_CLI)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"versus.py: --before: no such executable: {tmp_path / 'missing'}"
    proc = versus("--before", fake_cli(tmp_path, None), "--after", OUR_CLI, "--module", "json")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "versus.py: --before wrote no results (exit 0): fake: nothing to do"
