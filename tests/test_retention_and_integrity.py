"""CPython's own retention is measured, extensions that stop running are not
measurements, and a host's samples are exactly the ones asked for.

- The interned-string allowance (3.12/3.13) is what the host reads from the
  interpreter's interned dict, each string's block and bytes taken from the
  allocator hook: `import json` keeps exactly that (1,139 blocks / 57,725
  bytes a finalize cycle on 3.12.1, 1,817 / 99,336 on 3.13.0; a plain loop
  of legacy subinterpreters counting sys.getallocatedblocks(), no hook,
  reads 1,055 a cycle on 3.12.1 where the host says 1,056), so a 24 kB PyMem
  buffer leaked beside it is a leak, and a case replacing
  sys.getunicodeinternedsize changes nothing.
- An extension loaded in cycle 1 and gone later (refused re-initialisation,
  swallowed by a pure-Python fallback) is `unsupported`, named.
- Host lines carry a per-run token the case cannot read; lines without it
  are dropped and make the run an `error`; the samples must be 0..W+C.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fixtures.contract import check_contract
from fixtures.targets import REPO_ROOT
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings
from harness.errors import HarnessError
from harness.host.build import build_host
from harness.host.samples_check import sample_problem
from harness.verdict.ending import ending_verdict
from harness.result import Result
from harness.host.runner import HostRun

CYCLES, WARMUP = 8, 2
FALLBACK = "lh_fallback._speedups"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture
def run_case(engine, fixture_modules_for):
    def run(python_id: str, mode: str, code: str, host: str = "auto") -> Result:
        built = fixture_modules_for(python_id)
        settings = RunSettings(python=built.target.executable, mode=mode, cycles=CYCLES,
                               warmup=WARMUP, timeout=120, host=host,
                               pythonpath=(str(built.directory),))
        return engine.run(Case(name=code, code=code), settings)

    return run


def explain(result: Result) -> str:
    return (f"{result.verdict}: {result.message}\nexcess {result.excess}\n"
            f"tolerance {result.tolerance}\nevidence {result.evidence}")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT, env={**os.environ, **(env or {})})


def one_line_usage_error(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- CPython's retention, measured ---------------------------------------------

@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
def test_interned_allowance_is_exactly_what_import_json_keeps(run_case, python_id):
    result = run_case(python_id, "finalize", "import json")
    assert result.verdict == "clean", explain(result)
    interned = result.evidence["interned_per_cycle"]
    assert interned["measured"] == "blocks and bytes from the allocator hook"
    # json keeps nothing but its interned strings: the measured allowance is the excess
    assert interned["blocks"] == result.excess["blocks"], explain(result)
    assert interned["bytes"] == result.excess["bytes"], explain(result)
    blocks_kept = [s["interned_blocks"] for s in result.samples[WARMUP + 1:]]
    assert len(set(blocks_kept)) == 1, blocks_kept


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
@pytest.mark.parametrize("mode", ["finalize", "subinterpreter"])
def test_pymem_buffer_leaked_beside_json_is_a_leak(run_case, python_id, mode):
    leaky = run_case(python_id, mode, "import json\nimport lh_pymemleak")
    twin = run_case(python_id, mode, "import json\nimport lh_pymemclean")
    assert leaky.verdict == "leak", explain(leaky)
    assert "bytes" in leaky.evidence["triggered_by"], explain(leaky)
    assert twin.verdict == "clean", explain(twin)
    # beyond what CPython keeps (the twins' interned names differ by a
    # character), they differ by the one PyMem_Malloc(24576) block, exactly
    def beyond_interned(result: Result, key: str) -> float:
        return result.excess[key] - result.evidence["interned_per_cycle"][key]

    assert beyond_interned(leaky, "bytes") - beyond_interned(twin, "bytes") == 24576, (
        explain(leaky), explain(twin))
    assert beyond_interned(leaky, "blocks") - beyond_interned(twin, "blocks") == 1


def test_replacing_getunicodeinternedsize_changes_nothing(run_case):
    # before: the host called the case's replacement, the tolerance grew to
    # +1,000,000 blocks a cycle and this leak read clean
    forge = "import sys\nsys.getunicodeinternedsize = lambda *a, **k: 10**6\n"
    plain = run_case("3.12", "finalize", "import json\nimport lh_stateleak")
    forged = run_case("3.12", "finalize", forge + "import json\nimport lh_stateleak")
    assert plain.verdict == forged.verdict == "leak", (explain(plain), explain(forged))
    assert forged.tolerance == plain.tolerance
    assert forged.evidence["interned_per_cycle"] == plain.evidence["interned_per_cycle"]


# -- extensions that stop running after cycle 1 --------------------------------

@pytest.mark.parametrize("python_id, mode", [("3.11", "finalize"), ("3.12", "finalize"),
                                             ("3.12", "subinterpreter"), ("3.13", "finalize"),
                                             ("3.13", "subinterpreter")])
def test_extension_refusing_reinitialisation_is_unsupported_naming_it(run_case, python_id, mode):
    refused = run_case(python_id, mode, "import lh_refusereinit")
    twin = run_case(python_id, mode, "import lh_reinitok")
    assert refused.verdict == "unsupported", explain(refused)
    assert "lh_refusereinit" in refused.message and mode in refused.message
    assert "Interpreter change detected" in refused.message
    assert "cycle 2" in refused.message
    assert twin.verdict == "clean", explain(twin)


@pytest.mark.parametrize("python_id, mode", [("3.11", "finalize"), ("3.12", "finalize"),
                                             ("3.12", "subinterpreter"), ("3.13", "finalize"),
                                             ("3.13", "subinterpreter")])
def test_package_falling_back_to_pure_python_is_unsupported_naming_the_extension(
        run_case, python_id, mode):
    fallback = run_case(python_id, mode, "import lh_fallback\nlh_fallback.twice(21)")
    twin = run_case(python_id, mode, "import lh_fallback_ok\nlh_fallback_ok.twice(21)")
    assert fallback.verdict == "unsupported", explain(fallback)
    # the package swallowed the refusal: its message comes from importing
    # the extension alone in a second host of the same mode
    assert fallback.message.startswith(f"lh_fallback loaded {FALLBACK} in cycle 1 only"), fallback.message
    assert "Interpreter change detected" in fallback.message and mode in fallback.message
    assert fallback.evidence["extensions_loaded"] == [FALLBACK]
    assert twin.verdict == "clean", explain(twin)
    assert twin.evidence["extensions_loaded"] == ["lh_fallback_ok._speedups"]


def test_unsupported_reinit_result_follows_the_contract(fixture_modules_for, tmp_path):
    built = fixture_modules_for("3.12")
    proc = cli("run", "-c", "import lh_fallback", "--python", built.target.executable,
               "--cycles", "4", "--warmup", "1", "--json", env={"PYTHONPATH": str(built.directory)})
    assert proc.returncode == 0, proc.stderr  # unsupported exits 0, like CPython's refusals
    data = json.loads(proc.stdout)
    assert data["verdict"] == "unsupported" and FALLBACK in data["message"]
    out = tmp_path / "result.json"
    out.write_text(proc.stdout)
    check_contract(path=out)


# -- cycle counts that do not fit ----------------------------------------------

@pytest.mark.parametrize("option, value", [("--cycles", "4294967296"), ("--cycles", "2147483648"),
                                           ("--warmup", "2147483648"), ("--cycles", "100001")])
def test_cycles_beyond_int_range_are_refused(option, value):
    one_line_usage_error(cli("run", "-c", "pass", option, value))


def test_case_file_cycles_beyond_int_range_are_refused(tmp_path):
    case = tmp_path / "big.toml"
    case.write_text('name = "big"\nmodule = "json"\nbody = "import json"\ncycles = 4294967296\n')
    one_line_usage_error(cli("run", str(case)))


def test_settings_refuse_a_total_beyond_the_maximum():
    with pytest.raises(HarnessError, match="at most"):
        RunSettings(cycles=60_000, warmup=60_000)


@pytest.mark.parametrize("count", ["4294967296", "-1", "12abc", ""])
def test_host_refuses_a_cycle_count_it_cannot_hold(target_for, tmp_path, count):
    target = target_for("3.12")
    case = tmp_path / "case.py"
    case.write_text("pass\n")
    read_fd, write_fd = os.pipe()
    proc = subprocess.run([str(build_host(target)), "finalize", count, str(case), str(write_fd),
                           target.sys_executable], pass_fds=(write_fd,), capture_output=True,
                          text=True, timeout=60)
    os.close(write_fd)
    written = os.read(read_fd, 65536)
    os.close(read_fd)
    assert proc.returncode == 2, proc.stderr
    assert "CYCLES must be a whole number" in proc.stderr
    assert written == b""  # not one sample: nothing for a verdict to read


# -- samples the host did not write --------------------------------------------

FORGE = r"""
import os
fd = int(open("/proc/self/cmdline", "rb").read().split(b"\0")[{index}])
for cycle in range(40):
    os.write(fd, b'{{"token":"","event":"sample","cycle":%d,"mem_blocks":0,"obj_blocks":0}}\n' % cycle)
os.write(fd, b'[1, 2]\n')
import lh_stateleak
"""


def test_forged_samples_are_rejected(run_case):
    # before: accepted, `clean`, -1,777 blocks a cycle, 39 samples for 8 cycles
    result = run_case("3.12", "finalize", FORGE.format(index=4))
    assert result.verdict == "error", explain(result)
    assert result.evidence["forged_lines"] == 41 * (WARMUP + CYCLES)
    assert "sample pipe" in result.message
    assert [s["cycle"] for s in result.samples] == list(range(WARMUP + CYCLES + 1))


@pytest.mark.parametrize("mode", ["finalize", "subinterpreter"])
def test_a_case_closing_the_hosts_descriptors_is_an_error_that_says_so(run_case, mode):
    # os.closerange(3, 1000) takes the sample channel: the host's lines,
    # its own error event too, went nowhere, and the message was only
    # "host exited with status 3 in cycle 1 of 17"; its twin closes nothing
    result = run_case("3.13", mode, "import os\nos.closerange(3, 1000)")
    assert result.verdict == "error", explain(result)
    assert "could not be written to the harness's sample channel" in result.message
    assert "Bad file descriptor" in result.message
    assert "closed or replaced a file descriptor it does not own" in result.message
    twin = run_case("3.13", mode, "import os\nos.closerange(1000, 1001)")
    assert twin.verdict == "clean", explain(twin)


def test_forged_samples_are_rejected_by_the_pure_python_host(run_case):
    # the pure-Python host: `python -S -P DRIVER CASE CYCLES OUT_FD TOKEN_FD`
    result = run_case("3.12", "subinterpreter", FORGE.format(index=6), host="python")
    assert result.host == "python"
    assert result.verdict == "error", explain(result)
    assert result.evidence["forged_lines"] > 0


def test_pure_python_host_still_measures(run_case):
    result = run_case("3.12", "subinterpreter", "import lh_stateleak", host="python")
    assert result.host == "python"
    assert result.verdict == "leak", explain(result)
    assert "forged_lines" not in result.evidence


def settings(cycles: int = 4, warmup: int = 1) -> RunSettings:
    return RunSettings(cycles=cycles, warmup=warmup)


def completed(cycles: list[int]) -> HostRun:
    return HostRun(samples=[{"cycle": c} for c in cycles], completed=True, returncode=0)


def test_samples_must_be_every_cycle_in_order():
    assert ending_verdict(completed(list(range(6))), settings()) is None
    verdict, message = ending_verdict(completed([0, 1, 2, 3]), settings())
    assert verdict == "error" and "missing cycle(s) 4-5" in message
    verdict, message = ending_verdict(completed([]), settings())  # 2^32 cycles ran as 0
    assert verdict == "error" and "missing cycle(s) 0-5" in message
    verdict, message = ending_verdict(completed([0, 1, 2, 3, 4, 5, 6, 7]), settings())
    assert verdict == "error" and "unexpected cycle(s) 6-7" in message
    assert "repeated cycle(s) 2" in sample_problem([{"cycle": c} for c in [0, 1, 2, 2, 3, 4, 5]], 5)
    assert "out of order" in sample_problem([{"cycle": c} for c in [0, 2, 1, 3, 4, 5]], 5)


def test_lines_without_the_run_token_are_counted_not_used():
    from harness.host.runner import _take_event

    run = HostRun(token="ab" * 16)
    _take_event(b'{"token":"' + b"ab" * 16 + b'","event":"sample","cycle":0}', run)
    _take_event(b'{"event":"sample","cycle":1}', run)
    _take_event(b'{"token":"00","event":"done"}', run)
    _take_event(b'[1, 2]', run)
    _take_event(b'\xff\xfe not utf-8', run)  # a cut line: neither used nor counted
    assert run.samples == [{"cycle": 0}] and not run.completed
    assert run.forged_lines == 3


@pytest.mark.slow
def test_without_the_hook_interned_sizes_come_from_layout_and_match_memcheck(target_for):
    import shutil

    if shutil.which("valgrind") is None:
        from fixtures.targets import missing
        missing("valgrind not installed")
    target = target_for("3.12")
    result = Engine().run(Case(name="json", code="import json"),
                          RunSettings(python=target.executable, backend="valgrind", cycles=4,
                                      warmup=1, timeout=900))
    assert result.verdict == "clean", explain(result)
    interned = result.evidence["interned_per_cycle"]
    assert interned["measured"].startswith("blocks and bytes from each string's layout")
    # What memcheck finds lost per cycle is those strings, to the block and byte in most
    # cycles (3.12.1).  Not in every one: in CI one cycle came 3 bytes short (57,722 of
    # 57,725), in another run one cycle one string short (1,138 blocks, 57,680 bytes): a
    # string memcheck did not count lost at that check.  So the means may differ by at most
    # one string, and never upwards: memcheck never finds more than the strings.
    deltas = result.evidence["per_cycle_deltas"]
    for key, one_string in (("blocks", 1), ("bytes", 64)):
        pairs = list(zip(deltas[key]["excess"], deltas[key]["interned"]))
        assert sum(e == i for e, i in pairs) > len(pairs) / 2, explain(result)
        assert all(e <= i for e, i in pairs), explain(result)
        assert 0 <= interned[key] - result.excess[key] <= one_string, explain(result)
