"""`leak-harness scale`: interpreter cycles per second at 1..N threads, and its plot.

Throughput itself depends on the machine's load, so these tests check what
must hold anywhere: every thread count gets a positive rate from complete
rounds, the ratio's base is one thread, a failing case is a problem and exit
status 3, and the plots are real PNG / self-contained HTML files.
"""

from __future__ import annotations

import json

import pytest

from harness.cases.model import code_case
from harness.cli import main as cli_main
from harness.errors import HarnessError
from harness.report.scale_plot import write_plot
from harness.tools.scale import measure_scaling, parse_thread_counts


def test_thread_counts_always_include_one():
    assert parse_thread_counts("2,4") == [1, 2, 4]
    assert parse_thread_counts("4,1,2,2") == [1, 2, 4]
    for bad in ("0", "a,b", ""):
        with pytest.raises(HarnessError):
            parse_thread_counts(bad)


@pytest.fixture(scope="module")
def pass_scaling(target_for):
    target = target_for("3.12")
    return measure_scaling(code_case("pass"), target.executable, [1, 2], cycles=4, warmup=1,
                           repeats=1)


def test_bare_host_gives_a_rate_for_each_thread_count(pass_scaling):
    assert pass_scaling.host_mode == "bare-parallel"
    assert pass_scaling.ok
    one, two = pass_scaling.points
    assert one.threads == 1 and two.threads == 2
    assert one.cycles_per_s > 0 and two.cycles_per_s > 0
    assert pass_scaling.ratio(one) == 1.0
    assert pass_scaling.efficiency(two) == pytest.approx(pass_scaling.ratio(two) / 2)
    assert one.blocks_per_cycle is None  # the bare host counts nothing


def test_counters_host_adds_growth_per_interpreter_cycle(target_for):
    target = target_for("3.13")
    table = measure_scaling(code_case("pass"), target.executable, [2], cycles=4, warmup=1,
                            repeats=1, hooked=True)
    assert table.host_mode == "parallel" and table.ok
    # CPython's own ~2,000 blocks per ended interpreter, per interpreter (not per round of 2)
    for point in table.points:
        assert 500 < point.blocks_per_cycle < 5000, point.blocks_per_cycle


def test_plots_are_png_and_self_contained_html(pass_scaling, tmp_path):
    png = write_plot([pass_scaling], tmp_path / "scale.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = write_plot([pass_scaling], tmp_path / "scale.html").read_text()
    assert "<svg" in page and "<table>" in page and "src=" not in page
    with pytest.raises(HarnessError):
        write_plot([pass_scaling], tmp_path / "scale.pdf")


def test_cli_json_and_a_failing_case_exit_3(target_for, capsys):
    target = target_for("3.12")
    code = cli_main(["scale", "-c", "import lh_no_such_module", "--python", target.executable,
                     "--threads", "1", "--cycles", "2", "--warmup", "1", "--repeats", "2", "--json"])
    tables = json.loads(capsys.readouterr().out)
    assert code == 3
    problem = tables[0]["points"][0]["problem"]
    assert "No module named 'lh_no_such_module'" in problem


def test_cli_refuses_python_before_312(target_for, capsys):
    assert cli_main(["scale", "--python", target_for("3.11").executable]) == 2
    assert "needs Python 3.12+" in capsys.readouterr().err
