"""`sweep` and `doctor` end to end: a crash costs one row, results survive an interrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cases.model import stdlib_import_cases
from harness.tools.shards import assign_shards, durations_from, shard_costs
from harness.tools.sweep import parse_shard
from harness.errors import HarnessError
from fixtures.contract import check_contract

REPO = Path(__file__).resolve().parent.parent


def sweep_env(*paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *(str(p) for p in paths)])
    return env


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sweep_goes_on_past_a_crash_and_writes_every_result(target_for, fixture_modules_for, tmp_path):
    py = target_for("3.13").executable
    out = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "sweep", "--python", py, "--mode", "finalize",
         "--mode", "subinterpreter", "--module", "lh_crash", "--module", "lh_callclean",
         "--module", "lh_singlephase", "--cycles", "6", "--warmup", "2", "--jobs", "2",
         "--out", str(out)],
        capture_output=True, text=True, env=sweep_env(fixture_modules_for("3.13").directory),
        cwd=REPO, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr  # no leak among these
    rows = read_lines(out)
    cases = {(r["module"], r["mode"]): r for r in rows if r["role"] == "case"}
    controls = [r for r in rows if r["role"] == "control"]
    assert len(cases) == 6 and len(controls) == 2
    assert cases[("lh_crash", "finalize")]["verdict"] == "crash"
    assert "SIGSEGV" in cases[("lh_crash", "finalize")]["message"]
    assert cases[("lh_callclean", "finalize")]["verdict"] == "clean"
    assert cases[("lh_callclean", "subinterpreter")]["verdict"] == "clean"
    assert cases[("lh_singlephase", "subinterpreter")]["verdict"] == "unsupported"
    # CPython's own row is in the table and in the file
    assert "CPython's own growth per cycle" in proc.stdout
    assert all(c["per_cycle"]["blocks"] > 1000 for c in controls)  # 3.13: ~1,975 blocks/cycle
    assert "lh_crash" in proc.stdout and "crash" in proc.stdout


def test_sweep_lines_pass_the_run_json_contract(target_for, fixture_modules_for, tmp_path):
    out = tmp_path / "r.jsonl"
    subprocess.run(
        [sys.executable, "-m", "harness", "sweep", "--python", target_for("3.12").executable,
         "--mode", "legacy-subinterpreter", "--module", "lh_callleak", "--cycles", "5",
         "--warmup", "1", "--out", str(out)],
        capture_output=True, text=True, env=sweep_env(fixture_modules_for("3.12").directory),
        cwd=REPO, timeout=300,
    )
    rows = read_lines(out)
    assert rows, "the sweep wrote no line"
    for row in rows:
        check_contract(json.dumps(row))


def test_interrupted_sweep_keeps_finished_results(target_for, fixture_modules_for, tmp_path):
    slow = tmp_path / "mods"
    slow.mkdir()
    (slow / "lh_slow.py").write_text("import time\ntime.sleep(120)\n")
    out = tmp_path / "partial.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "sweep", "--python", target_for("3.12").executable,
         "--mode", "finalize", "--module", "lh_callclean", "--module", "lh_slow",
         "--cycles", "4", "--warmup", "1", "--jobs", "2", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=sweep_env(fixture_modules_for("3.12").directory, slow), cwd=REPO,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if out.exists() and any(r.get("module") == "lh_callclean" for r in read_lines(out)):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the clean case never finished")
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "partial results kept" in stdout
    rows = read_lines(out)
    assert [r["verdict"] for r in rows if r["module"] == "lh_callclean"] == ["clean"]
    assert not any(r.get("module") == "lh_slow" for r in rows)


def test_shards_partition_the_cases(target_for):
    cases, _ = stdlib_import_cases(target_for("3.12"))
    keys = [(c.name, "finalize") for c in cases]
    shard_of = assign_shards(keys, 3)
    names = [sorted(k[0] for k, s in zip(keys, shard_of) if s == i) for i in range(3)]
    assert sorted(sum(names, [])) == sorted(c.name for c in cases)
    # equal costs without a durations file: counts differ by at most one
    assert max(map(len, names)) - min(map(len, names)) <= 1
    assert assign_shards(keys, 3) == shard_of  # every shard computes the same split
    with pytest.raises(HarnessError):
        parse_shard("4/3")


def test_measured_durations_balance_shards_that_a_name_split_does_not():
    # A few slow cases (asyncio, doctest, ... at ~1.5 s) among many fast ones:
    # split by name their shards differ several-fold; by cost within 15 %.
    keys = [(f"import m{i:03d}", "finalize") for i in range(240)]
    durations = {k: (1.5 if i % 40 == 0 else 0.05 + (i % 7) * 0.01) for i, k in enumerate(keys)}
    durations.update({keys[i]: 1.5 for i in range(1, 6)})   # slow ones bunched by name
    by_cost = shard_costs(keys, 4, durations)
    mean = sum(by_cost) / 4
    assert max(by_cost) <= 1.15 * mean, by_cost
    by_name = [0.0] * 4
    for i, key in enumerate(keys):
        by_name[i * 4 // len(keys)] += durations[key]
    assert max(by_name) > 1.15 * (sum(by_name) / 4)   # what a contiguous name split gives


def test_durations_come_from_a_results_file(tmp_path):
    lines = [{"schema": 1, "case": "import json", "verdict": "clean", "python": {"version": "3.12.1"}, "mode": "finalize", "wall_s": 0.4, "role": "case"},
             {"schema": 1, "case": "import json", "verdict": "clean", "python": {"version": "3.12.1"}, "mode": "finalize", "wall_s": 0.6, "role": "case"},
             {"schema": 1, "case": "(control: pass)", "verdict": "clean", "python": {"version": "3.12.1"}, "mode": "finalize", "wall_s": 9.0, "role": "control"}]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert durations_from([path]) == {("import json", "finalize"): 0.6}


def test_stdlib_cases_skip_gui_and_foreign_platform_modules_with_reasons(target_for):
    cases, skipped = stdlib_import_cases(target_for("3.12"))
    names = {c.module for c in cases}
    assert {"json", "_json", "asyncio", "sqlite3"} <= names
    assert "antigravity" not in names and "browser" in skipped["antigravity"]
    assert "winreg" in skipped


def test_doctor_reports_what_works(target_for):
    py = target_for("3.12").executable
    proc = subprocess.run([sys.executable, "-m", "harness", "doctor", "--python", py],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env=sweep_env())
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "C compiler" in text and "valgrind" in text
    assert "finalize: ok" in text and "subinterpreter: ok" in text


def test_sweep_catalog_refuses_an_unknown_case_and_a_module_list(capsys):
    """`sweep --catalog NAME` (the nightly's catalog sweep) names what it cannot run, exit 2."""
    from harness.cli import main as cli_main
    assert cli_main(["sweep", "--catalog", "no-such-case", "--mode", "finalize"]) == 2
    assert "no case named no-such-case" in capsys.readouterr().err
    assert cli_main(["sweep", "--catalog", "--module", "json"]) == 2
    assert "--catalog runs the curated cases" in capsys.readouterr().err


@pytest.mark.parametrize("terminal", [False, True])
def test_the_progress_bar_is_built_only_where_it_is_shown_and_twice_a_second(terminal):
    """rich redraws a Progress ten times a second by default, and builds it
    even where nothing is shown (a pipe, a file, the nightly job): 0.8% of a
    core measured there, 1.8% on a terminal.  Off a terminal the sweep's bar is
    built once, as it starts (rich's own first draw), never while the sweep
    runs; on one, at most twice a second (rich's default: ten builds here)."""
    import io

    from rich.console import Console

    from harness.commands.sweep import sweep_progress

    console = Console(file=io.StringIO(), width=160, force_terminal=terminal)
    builds = 0
    with sweep_progress(console) as progress:
        real = progress.make_tasks_table

        def counted(tasks):
            nonlocal builds
            builds += 1
            return real(tasks)

        progress.make_tasks_table = counted
        task = progress.add_task("", total=10)
        start = time.monotonic()
        for step in range(10):
            time.sleep(0.1)
            progress.update(task, advance=1, description=f"module{step} [finalize] clean")
        running = time.monotonic() - start
        during = builds
    if terminal:
        assert 1 <= during <= 2 * running + 2, (during, running)
    else:
        assert during <= 1, during


@pytest.mark.parametrize("selectors, says", [
    (["--package", "msgpack", "--module", "json"], "give --module or --package, not both"),
    (["--package", "msgpack", "--scope", "all"], "--scope all sweeps a whole scope: give it no --package"),
    (["--module", "json", "--scope", "packages"], "--scope packages sweeps a whole scope: give it no --module"),
    (["--catalog", "--scope", "all"], "--catalog runs the curated cases"),
])
def test_selectors_that_contradict_each_other_are_refused(target_for, tmp_path, selectors, says):
    # one of them was dropped without a word: `--package msgpack --module
    # json` swept json alone, 1 clean, exit 0, msgpack never run
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "harness", "sweep", "--python", target_for("3.13").executable,
                           *selectors, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and says in proc.stderr, proc.stderr
    assert not out.exists() or out.read_text() == ""
