"""bench/shards.py's figure: shards assigned from one results file, costed by another."""

from __future__ import annotations

import json
import subprocess
import sys

from fixtures.targets import REPO_ROOT


def write_results(path, costs: dict[str, float]) -> None:
    python = {"version": "3.12.1", "executable": "/usr/bin/python3.12", "debug": False}
    path.write_text("".join(json.dumps({"schema": 1, "case": name, "module": name.split()[-1],
                                        "python": python, "mode": "finalize",
                                        "backend": "counters", "wall_s": wall,
                                        "verdict": "clean", "role": "case"}) + "\n"
                            for name, wall in costs.items()))


def shards_json(*args: str) -> dict:
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "shards.py"), *args, "--json"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_shards_are_costed_by_the_later_run_and_assigned_by_the_earlier(tmp_path):
    # four slow jobs that sort together by name, and twelve quick ones
    earlier = {f"import a{i}": 4.0 for i in range(4)} | {f"import z{i:02}": 1.0 for i in range(12)}
    later = dict(earlier, **{"import z00": 9.0})     # one job got slow since
    write_results(tmp_path / "earlier.jsonl", earlier)
    write_results(tmp_path / "later.jsonl", later)

    same = shards_json("--results", str(tmp_path / "earlier.jsonl"), "--shards", "4")
    # one slow job and three quick ones a shard: 7 s each, exactly even
    assert same["by_durations_shard_s"] == [7.0] * 4
    assert same["by_durations_slowest_over_mean"] == 1.0 and not same["out_of_sample"]

    out = shards_json("--results", str(tmp_path / "later.jsonl"),
                      "--durations", str(tmp_path / "earlier.jsonl"), "--shards", "4")
    assert out["out_of_sample"] and out["jobs"] == 16 and out["total_s"] == 36.0
    # z00's shard carries its 8 s more: 15 of a 9 s mean
    assert sorted(out["by_durations_shard_s"]) == [7.0, 7.0, 7.0, 15.0]
    assert out["by_durations_slowest_over_mean"] == round(15.0 / 9.0, 4)


def test_a_missing_results_file_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "shards.py"),
                           "--results", str(tmp_path / "none.jsonl")],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(f"no such results file: {tmp_path / 'none.jsonl'}")


def test_a_file_that_is_not_results_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "junk.jsonl").write_text('{"case": "x"}\n')
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "shards.py"),
                           "--results", str(tmp_path / "junk.jsonl")],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("not a leak-harness result (no 'case'/'verdict')")
