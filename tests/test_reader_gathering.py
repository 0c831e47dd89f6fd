"""The host reader lets lines gather between wake-ups, and never while the host waits on it.

Each wake-up for one line cost the harness 70-120 us of CPU (its caches are
cold with the host running on the other core), so the reader waits up to
runner.GATHER_S for the host's end alone after a wake-up that brought only
lines.  What must not change: every line arrives, the host's end is seen at
once, a host waiting for its adaptive answer gets it without that wait, and
a case's own output is read at once.
"""

from __future__ import annotations

import os

import pytest

from harness.host import runner
from harness.host.build import build_host
from harness.host.runner import Stopping, _gather_s, run_host

_FD = runner.OUT_FD


def _argv(target, tmp_path, code: str, cycles: int, *extra: str) -> list[str]:
    case = tmp_path / "case.py"
    case.write_text(code)
    return [str(build_host(target)), "finalize", str(cycles), str(case), _FD,
            target.sys_executable, *extra]


def test_lines_gather_between_reads_and_none_is_lost(target_for, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "GATHER_S", 0.2)
    run = run_host(_argv(target_for("3.12"), tmp_path, "pass", 25), _FD, dict(os.environ), 120)
    assert run.completed and run.returncode == 0
    assert [s["cycle"] for s in run.samples] == list(range(26))
    # woken per line, 26 samples and 25 extension lines took 26 reads or more
    assert run.line_reads <= 12, run.line_reads


def test_the_hosts_end_is_not_waited_for(target_for, tmp_path, monkeypatch):
    # the gathering wait watches the host's end: a 10 s wait would show in wall time
    monkeypatch.setattr(runner, "GATHER_S", 10.0)
    run = run_host(_argv(target_for("3.12"), tmp_path, "pass", 3), _FD, dict(os.environ), 120)
    assert run.completed and len(run.samples) == 4
    assert run.wall_s < 8, run.wall_s


def test_a_host_waiting_for_its_answer_gets_it_without_the_gathering_wait(
        target_for, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "GATHER_S", 10.0)
    asked = []

    def should_stop(samples: list[dict]) -> bool:
        asked.append(samples[-1]["cycle"])
        return samples[-1]["cycle"] >= 6

    argv = _argv(target_for("3.12"), tmp_path, "pass", 25,
                 "--stop-fd", runner.STOP_FD, "--ask-from", "3")
    run = run_host(argv, _FD, dict(os.environ), 120, stopping=Stopping(3, should_stop))
    assert asked == [3, 4, 5, 6]
    assert run.stop_asked_at == 6 and run.stopped_at == 6
    # a 10 s gathering wait before any answer would show here
    assert run.wall_s < 8, run.wall_s


def test_a_chatty_case_is_read_at_once(target_for, tmp_path, monkeypatch):
    # 4 MiB printed a cycle fills the 64 KiB pipe 64 times over: read only
    # every GATHER_S, one cycle would take 64 x 10 s
    monkeypatch.setattr(runner, "GATHER_S", 10.0)
    code = "import sys\nsys.stdout.write('x' * (4 << 20))\nsys.stdout.flush()"
    run = run_host(_argv(target_for("3.12"), tmp_path, code, 2), _FD, dict(os.environ), 120)
    assert run.completed and len(run.samples) == 3
    assert run.output_tail.endswith("x" * 100)
    assert run.wall_s < 8, run.wall_s


@pytest.mark.parametrize("samples, prompt_from, expected", [
    ([], None, 0.03),
    ([{"cycle": 2, "t_ms": 100.0}], None, 0.03),
    ([{"cycle": 0, "t_ms": 0.0}], 12, 0.0),      # no pace known yet
    # 10 ms a cycle, 3 samples before the awaited one: half of 30 ms
    ([{"cycle": 7, "t_ms": 70.0}, {"cycle": 8, "t_ms": 80.0}], 12, 0.015),
    ([{"cycle": 10, "t_ms": 100.0}, {"cycle": 11, "t_ms": 110.0}], 12, 0.0),
    ([{"cycle": 12, "t_ms": 120.0}], 12, 0.0),
    # a slow cycle: the full wait
    ([{"cycle": 1, "t_ms": 0.0}, {"cycle": 2, "t_ms": 900.0}], 12, 0.03),
])
def test_gather_time_stops_before_the_sample_the_host_waits_on(samples, prompt_from, expected,
                                                                monkeypatch):
    monkeypatch.setattr(runner, "GATHER_S", 0.03)
    assert _gather_s(samples, prompt_from) == pytest.approx(expected)
