"""The nightly job (ci/nightly.sh) end to end on a small subset, its sharded form, the
GitHub workflow that drives it, and the committed baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fixtures.targets import REPO_ROOT
from harness.results.load import load_results, result_key

SCRIPT = REPO_ROOT / "ci" / "nightly.sh"
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "nightly.yml"
CATALOG_CASE = "json-roundtrip"


def nightly(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def job_env(fixture_modules_for, tmp_path_factory) -> dict:
    fixtures = fixture_modules_for("3.12")
    folder = tmp_path_factory.mktemp("nightly")
    return {
        "LEAK_HARNESS_PYTHONS": fixtures.target.executable,
        "PYTHONPATH": str(fixtures.directory),
        "NIGHTLY_MODULES": "lh_initleak lh_initclean",
        "NIGHTLY_CASES": CATALOG_CASE,
        "NIGHTLY_MODES": "finalize",
        "NIGHTLY_CYCLES": "8", "NIGHTLY_WARMUP": "2", "NIGHTLY_JOBS": "2",
        "NIGHTLY_VALGRIND_MODULES": "none",    # minutes per module: the nightly's, not CI's
        "NIGHTLY_BASELINE": str(folder / "baseline.json"),
        "NIGHTLY_KNOWN": str(folder / "known-leaks.toml"),
        "FOLDER": str(folder),
    }


@pytest.fixture(scope="module")
def runs(job_env) -> dict[str, Path]:
    """The whole job with --update-baseline, and its two shards, run side by side."""
    folder = Path(job_env["FOLDER"])
    procs = {
        "full": subprocess.Popen(["bash", str(SCRIPT), "--update-baseline", "--out", str(folder / "full")],
                                 env=dict(os.environ, **job_env), cwd=REPO_ROOT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE),
    }
    for shard in ("1/2", "2/2"):
        out = folder / f"shard{shard[0]}"
        procs[f"shard{shard[0]}"] = subprocess.Popen(
            ["bash", str(SCRIPT), "--shard", shard, "--sweep-only", "--out", str(out)],
            env=dict(os.environ, **job_env), cwd=REPO_ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"nightly {name} exit {proc.returncode}:\n{stdout}\n{stderr}"
    return {name: folder / name for name in procs}


def test_update_baseline_writes_every_report_and_the_baseline(runs, job_env):
    out = runs["full"]
    for name in ("results.jsonl", "report.html", "report.md", "junit.xml", "report.json"):
        assert (out / name).stat().st_size > 0, name
    results = load_results([out / "results.jsonl"])
    verdicts = {(l["case"], l["mode"]): l["verdict"] for l in results.case_lines()}
    assert verdicts[("lh_initleak-import", "finalize")] == "leak"
    assert verdicts[("lh_initclean-import", "finalize")] == "clean"
    assert (CATALOG_CASE, "finalize") in verdicts             # the curated case ran too
    baseline = load_results([job_env["NIGHTLY_BASELINE"]])
    assert sorted(map(result_key, baseline.lines)) == sorted(map(result_key, results.lines))
    assert all("samples" not in line for line in baseline.lines)
    assert "lh\\_initleak" in (out / "report.md").read_text()


def test_the_job_fails_on_a_new_leak_and_passes_when_it_is_known(runs, job_env, tmp_path):
    results = runs["full"] / "results.jsonl"
    env = dict(job_env)
    # (unchanged against the baseline it just wrote: exit 0, in the shard test below)
    # a baseline from before the leak: exit 1, the leak under "new"
    baseline = json.loads(Path(env["NIGHTLY_BASELINE"]).read_text())
    baseline["results"] = [r for r in baseline["results"] if r["module"] != "lh_initleak"]
    old = tmp_path / "old-baseline.json"
    old.write_text(json.dumps(baseline))
    env["NIGHTLY_BASELINE"] = str(old)
    proc = nightly("--results", str(results), "--out", str(tmp_path / "new"), env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    compared = json.loads((tmp_path / "new" / "compare.json").read_text())
    assert {c["module"] for c in compared["new"]} == {"lh_initleak"}
    assert "NEW LEAKS (1)" in proc.stdout
    # the same leak in known-leaks: exit 0, listed as known
    Path(env["NIGHTLY_KNOWN"]).write_text(
        '[[leak]]\nmodule = "lh_initleak"\nreason = "the fixture strands its table on purpose"\n')
    proc = nightly("--results", str(results), "--out", str(tmp_path / "known"), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "KNOWN (1)" in proc.stdout
    Path(env["NIGHTLY_KNOWN"]).unlink()


def test_shards_merged_by_the_job_equal_the_whole_run(runs, job_env, tmp_path):
    shard_files = [runs[s] / "results.jsonl" for s in ("shard1", "shard2")]
    keys = [{result_key(l) for l in load_results([f]).case_lines()} for f in shard_files]
    assert all(keys) and not keys[0] & keys[1]
    proc = nightly("--results", *map(str, shard_files), "--out", str(tmp_path / "merged"), env=job_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr   # same results as the baseline
    compared = json.loads((tmp_path / "merged" / "compare.json").read_text())
    assert compared["failed"] is False and {c["module"] for c in compared["unchanged"]} == {"lh_initleak"}
    merged = load_results([tmp_path / "merged" / "results.jsonl"])
    whole = load_results([runs["full"] / "results.jsonl"])
    assert {result_key(l) for l in merged.case_lines()} == {result_key(l) for l in whole.case_lines()}
    assert (tmp_path / "merged" / "report.html").stat().st_size > 0


def test_usage_errors_and_a_missing_baseline_exit_2(runs, job_env, tmp_path):
    assert nightly("--bogus", env=job_env).returncode == 2
    assert nightly("--results", env=job_env).returncode == 2
    help_text = nightly("--help", env=job_env)
    assert help_text.returncode == 0 and "--update-baseline" in help_text.stdout
    env = dict(job_env, NIGHTLY_BASELINE=str(tmp_path / "nowhere.json"))
    proc = nightly("--results", str(runs["full"] / "results.jsonl"), "--out", str(tmp_path / "o"), env=env)
    assert proc.returncode == 2 and "run ci/nightly.sh --update-baseline first" in proc.stderr


def test_the_workflow_runs_the_script_over_a_python_by_shard_matrix():
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow[True] if True in flow else flow["on"]   # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    sweep, final = flow["jobs"]["sweep"], flow["jobs"]["compare"]
    matrix = sweep["strategy"]["matrix"]
    assert {"3.10", "3.11", "3.12", "3.13", "debug"} <= set(matrix["python"])
    assert len(matrix["shard"]) == int(flow["env"]["SHARDS"]) > 1
    steps = "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in sweep["steps"])
    assert "valgrind" in steps and "python3-dbg" in steps and "actions/setup-python" in steps
    assert "ci/nightly.sh --shard" in steps and "--sweep-only" in steps
    assert "actions/upload-artifact" in steps
    final_steps = "\n".join(str(s.get("run", "")) + str(s.get("uses", "")) for s in final["steps"])
    assert final["needs"] == "sweep" and "actions/download-artifact" in final_steps
    assert "ci/nightly.sh --results" in final_steps and "actions/upload-artifact" in final_steps
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_the_committed_baseline_is_current_and_passes_against_itself():
    baseline = REPO_ROOT / "ci" / "baseline.json"
    results = load_results([baseline])
    pythons = {l["python"]["version"][:4] for l in results.case_lines()}
    assert {"3.12", "3.13"} <= pythons and results.control_lines()
    proc = subprocess.run([sys.executable, "-m", "harness", "compare",
                           str(baseline), str(baseline), "--known",
                           str(REPO_ROOT / "suppressions" / "known-leaks.toml")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
