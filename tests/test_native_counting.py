"""Native memory (the C allocator) is counted and judged by the counters backend.

The counting host interposes malloc & co. for the whole process
(harness/host/native_alloc.c); `native_blocks`/`native_bytes` are judged
like blocks/bytes against the `pass` control, and each growing caller
becomes a `sites` entry naming its module.  Each native defect below sits
beside its clean twin (tests/fixtures/ext):

- lh_mallocleak: exec mallocs 4,096 bytes into module state, m_free forgets
  them: +1 block, +4,096 bytes a cycle.
- lh_strdupleak: exec keeps strdup(<55 bytes>) and calloc(512, sizeof(int));
  m_free forgets both: +2 blocks, +2,103 bytes a cycle, allocated inside
  libc on the module's behalf.
- lh_nativecallleak: f() drops a 1,000-byte malloc: +1 block a call.
- ctypes' malloc of libc's own handle (ctypes.CDLL("libc.so.6")): dlsym on
  an explicit handle never searches the executable, so the host's dlsym
  hands out its own allocator there: +1 block, +100,000 bytes a cycle.
The twins free in m_free (or in f), lh_oncecache keeps one malloc per
process, and `import json` keeps nothing native per cycle: all clean.
"""

from __future__ import annotations

import json
import os

import pytest

from fixtures.contract import check_contract
from fixtures.targets import PYTHON_IDS, python_version_of
from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings
from harness.host.build import INTERPOSED, build_host
from harness.result import Result
from test_fixture_verdicts import assert_verdict

CYCLES, WARMUP = 12, 3
#: (module, code, native blocks per cycle, native bytes per cycle, function at the top site)
NATIVE_LEAKS = [
    ("lh_mallocleak", "import lh_mallocleak", 1, 4096, "exec_module"),
    ("lh_strdupleak", "import lh_strdupleak", 2, 2048 + 55, "exec_module"),
    ("lh_nativecallleak", "import lh_nativecallleak\nlh_nativecallleak.f()", 1, 1000, "f"),
]
CLEAN = [
    ("lh_mallocclean", "import lh_mallocclean"),
    ("lh_strdupclean", "import lh_strdupclean"),
    ("lh_nativecallclean", "import lh_nativecallclean\nlh_nativecallclean.f()"),
    ("lh_oncecache", "import lh_oncecache"),
    ("json", "import json"),
]


def modes_of(python_id: str) -> list[str]:
    # own-GIL subinterpreters exist from 3.12
    isolated = ["subinterpreter"] if python_version_of(python_id) >= (3, 12) else []
    return ["finalize", "legacy-subinterpreter", *isolated]


def matrix(cases: list) -> list:
    return [pytest.param(python_id, mode, *case, id=f"{case[0]}-{python_id}-{mode}")
            for case in cases for python_id in PYTHON_IDS for mode in modes_of(python_id)]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture
def run_case(engine, fixture_modules_for):
    def run(python_id: str, mode: str, module: str, code: str, **extra) -> Result:
        built = fixture_modules_for(python_id)
        settings = RunSettings(python=built.target.executable, mode=mode, backend="counters",
                               cycles=CYCLES, warmup=WARMUP, timeout=90.0,
                               pythonpath=(str(built.directory),), **extra)
        return engine.run(Case(name=module, code=code, module=module), settings)

    return run


def assert_excess_is_case_minus_control(result: Result) -> None:
    control = result.control["per_cycle"]
    for key in ("native_blocks", "native_bytes"):
        assert result.excess[key] == pytest.approx(result.per_cycle[key] - control[key], abs=1e-2)


@pytest.mark.parametrize("python_id, mode, module, code, blocks, size, function",
                         matrix(NATIVE_LEAKS))
def test_native_leak_is_flagged_and_its_site_names_the_module(
        run_case, python_id, mode, module, code, blocks, size, function):
    result = run_case(python_id, mode, module, code)
    assert_verdict(result, "leak")
    assert {"native_blocks", "native_bytes"} <= set(result.evidence["triggered_by"]), result.message
    assert_excess_is_case_minus_control(result)
    # the allocations are the only native growth: the excess is their size
    assert result.excess["native_blocks"] == pytest.approx(blocks, abs=0.25)
    assert result.excess["native_bytes"] >= size - 64
    assert result.excess["native_bytes"] == pytest.approx(size, abs=64)
    top = result.sites[0]
    assert top["kind"] == "native" and top["module"] == module, result.sites
    assert top["function"] == function, top
    assert f"/{module[3:]}.c:" in top["at"], top  # file:line from the fixture's debug info
    # per caller, exact: each leaking call site's own blocks and bytes
    assert sum(s["excess_blocks_per_cycle"] for s in result.sites if s["module"] == module) == blocks
    assert sum(s["excess_bytes_per_cycle"] for s in result.sites if s["module"] == module) == size


@pytest.mark.parametrize("python_id, mode, module, code", matrix(CLEAN))
def test_native_twins_one_time_cache_and_json_are_clean(run_case, python_id, mode, module, code):
    result = run_case(python_id, mode, module, code)
    assert_verdict(result, "clean")
    assert_excess_is_case_minus_control(result)
    assert result.excess["native_blocks"] <= result.tolerance["native_blocks"]
    assert result.excess["native_bytes"] <= result.tolerance["native_bytes"]
    assert not [s for s in result.sites if s["module"] == module], result.sites


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
def test_strdup_made_by_libc_is_charged_to_the_extension(run_case, python_id):
    result = run_case(python_id, "subinterpreter", "lh_strdupleak", "import lh_strdupleak")
    assert_verdict(result, "leak")
    by_size = {s["excess_bytes_per_cycle"]: s for s in result.sites}
    # strdup's malloc is called inside libc: the walk goes on to the module
    assert by_size[55]["module"] == "lh_strdupleak" and by_size[55]["function"] == "exec_module"
    assert by_size[2048]["module"] == "lh_strdupleak"
    assert by_size[55]["at"] != by_size[2048]["at"]  # two call sites, two lines


@pytest.mark.parametrize("python_id, mode, module, code", [
    pytest.param(python_id, mode, module, code, id=f"{module}-{python_id}-{mode}")
    for python_id in ("3.11", "3.12", "3.13") for mode in ("finalize", "legacy-subinterpreter")
    for module, code in (("lh_stateleak", "import lh_stateleak"),
                         ("lh_callleak", "import lh_callleak\nlh_callleak.f()"))])
@pytest.mark.parametrize("pythonmalloc", ["", "malloc"])
def test_pymem_leaks_are_not_counted_twice_as_native(run_case, monkeypatch, python_id, mode,
                                                     module, code, pythonmalloc):
    # PYTHONMALLOC=malloc sends every PyMem block to malloc: the hook counts
    # them, the interposer must not
    if pythonmalloc:
        monkeypatch.setenv("PYTHONMALLOC", pythonmalloc)
    else:
        monkeypatch.delenv("PYTHONMALLOC", raising=False)
    result = run_case(python_id, mode, module, code)
    assert_verdict(result, "leak")
    assert set(result.evidence["triggered_by"]) <= {"blocks", "bytes"}, result.message
    assert result.excess["blocks"] >= 5
    assert abs(result.excess["native_blocks"]) <= result.tolerance["native_blocks"]
    assert abs(result.excess["native_bytes"]) <= result.tolerance["native_bytes"]


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
def test_native_call_leak_is_counted_exactly_by_parallel_threads(run_case, python_id):
    result = run_case(python_id, "parallel", "lh_nativecallleak",
                      "import lh_nativecallleak\nlh_nativecallleak.f()", threads=2)
    assert_verdict(result, "leak")
    # per interpreter cycle: each of the 2 threads dropped one block per round
    assert result.excess["native_blocks"] == pytest.approx(1, abs=0.25)
    assert result.sites[0]["module"] == "lh_nativecallleak"
    assert result.sites[0]["excess_blocks_per_cycle"] == 1


HUGE = (1 << 30) + 4096  # a GiB: its size only in the side table, like any block past the entry's field


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
@pytest.mark.parametrize("module", ["lh_tunableleak", "lh_tunableclean"])
def test_blocks_of_a_gib_are_counted_exactly_and_their_frees_untracked(run_case, python_id, module):
    # a PyMem block of 1 GiB + 4 kB a cycle (glibc maps it, two bytes
    # written: no resident cost): the map holds a size marker and the side
    # table the size; the hook's inline path hands these to its out-of-line one
    result = run_case(python_id, "finalize", module, f"import {module}\n{module}.sparse({HUGE})")
    if module == "lh_tunableleak":
        assert_verdict(result, "leak")
        assert result.excess["bytes"] == pytest.approx(HUGE, abs=4096)
    else:
        assert_verdict(result, "clean")
        assert abs(result.excess["bytes"]) < 4096
    assert result.excess["rss"] < 64 << 20  # the fixture touched two pages a block


def run_twins(run_case, python_id: str, mode: str, function: str, size: int) -> tuple[Result, Result]:
    """lh_tunableleak.FUNCTION(size) keeps one block of `size` a call, its
    clean twin lh_tunableclean frees it: (the leak's result, the twin's),
    with their verdicts checked."""
    code = "import {0}\n{0}.%s(%d)" % (function, size)
    extra = {"threads": 2} if mode == "parallel" else {}
    leak = run_case(python_id, mode, "lh_tunableleak", code.format("lh_tunableleak"), **extra)
    clean = run_case(python_id, mode, "lh_tunableclean", code.format("lh_tunableclean"), **extra)
    assert_verdict(leak, "leak")
    assert_verdict(clean, "clean")
    return leak, clean


BIG = 0x3FFF  # the 14-bit size field's escape: from here the size is in the side table


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
@pytest.mark.parametrize("mode, size", [
    ("finalize", BIG - 1), ("finalize", BIG), ("finalize", 100_000),
    ("subinterpreter", 100_000), ("parallel", 100_000)])
def test_pymem_blocks_past_the_compact_entry_are_counted_to_the_byte(run_case, python_id, mode, size):
    # a PyMem_Malloc(size) a call: the twins differ by exactly that block,
    # and by their interned module names (one character), which the result
    # reports apart
    leak, clean = run_twins(run_case, python_id, mode, "pymem", size)

    def own(result: Result, key: str) -> float:
        interned = result.evidence.get("interned_per_cycle") or {"blocks": 0, "bytes": 0}
        return result.per_cycle[key] - interned[key]

    for key in ("blocks", "bytes"):
        assert own(leak, key) - own(clean, key) == (1 if key == "blocks" else size), key


NATIVE_BIG = (1 << 18) - 1  # the native map's 18-bit size field's escape


@pytest.mark.parametrize("python_id", ["3.12", "3.13"])
@pytest.mark.parametrize("mode, size", [
    ("finalize", NATIVE_BIG - 1), ("finalize", NATIVE_BIG), ("finalize", 1_000_000),
    ("parallel", 1_000_000)])
def test_native_blocks_past_the_compact_entry_are_counted_to_the_byte(run_case, python_id, mode, size):
    # a malloc(size) a call: the twins' native counts differ by exactly that block
    leak, clean = run_twins(run_case, python_id, mode, "native", size)
    assert leak.per_cycle["native_blocks"] - clean.per_cycle["native_blocks"] == 1
    assert leak.per_cycle["native_bytes"] - clean.per_cycle["native_bytes"] == size
    assert leak.sites[0]["module"] == "lh_tunableleak"


def test_native_leak_result_meets_the_run_json_contract(run_case):
    result = run_case("3.12", "finalize", "lh_mallocleak", "import lh_mallocleak")
    text = json.dumps(result.to_json())
    check_contract(text)
    report = json.loads(text)
    assert report["verdict"] == "leak"
    assert report["sites"][0]["module"] == "lh_mallocleak"
    assert report["per_cycle"]["heap_in_use_bytes"] is not None  # mallinfo2, reported only
    assert "heap_in_use_bytes" not in report["tolerance"]


def _dynamic_functions(path: str) -> set[str]:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as stream:
        table = ELFFile(stream).get_section_by_name(".dynsym")
        return {s.name for s in table.iter_symbols()
                if s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] != "SHN_UNDEF"}


def test_only_the_counting_host_defines_malloc(target_for):
    # valgrind and memray get a host that leaves malloc to them
    target = target_for("3.12")
    assert set(INTERPOSED) <= _dynamic_functions(str(build_host(target)))
    assert not set(INTERPOSED) & _dynamic_functions(str(build_host(target, native=False)))
    assert os.path.basename(build_host(target, native=False)) != os.path.basename(build_host(target))


# -- the allocator looked up by handle (dlsym) --------------------------------

LIBC_MALLOC = ("import ctypes\nlibc = ctypes.CDLL('libc.so.6')\n"
               "libc.malloc.restype = ctypes.c_void_p\nlibc.free.argtypes = [ctypes.c_void_p]\n"
               "p = libc.malloc(100000)\nctypes.memset(p, 1, 100000)\n")


@pytest.mark.skipif(not any(name == "dlsym" for name in INTERPOSED),
                    reason="the host defines dlsym on x86-64 only")
@pytest.mark.parametrize("mode", ["finalize", "subinterpreter"])
@pytest.mark.parametrize("freed", [False, True], ids=["leak", "twin"])
def test_malloc_from_libcs_own_handle_is_counted(run_case, mode, freed):
    # 3.13: 3.12.1 aborts in ctypes' finalize on its own, 3.11's ctypes
    # leaks by itself; the leak read `clean` (native +0) before the host
    # defined dlsym, its heap in use growing +100 kB a cycle
    result = run_case("3.13", mode, "ctypes", LIBC_MALLOC + ("libc.free(p)\n" if freed else ""))
    if freed:
        assert_verdict(result, "clean")
        assert abs(result.excess["native_bytes"]) < 128, result.message
        return
    assert_verdict(result, "leak")
    assert {"native_blocks", "native_bytes"} <= set(result.evidence["triggered_by"]), result.message
    assert result.excess["native_blocks"] == pytest.approx(1, abs=0.25)
    assert result.excess["native_bytes"] == pytest.approx(100000, abs=64)


@pytest.mark.skipif(not any(name == "dlsym" for name in INTERPOSED),
                    reason="the host defines dlsym on x86-64 only")
def test_dlsym_with_rtld_next_and_default_is_glibcs_answer_for_the_caller(run_case, tmp_path):
    # RTLD_NEXT and RTLD_DEFAULT depend on who asks: the host's dlsym jumps
    # to glibc's with the extension's return address in place, so glibc's
    # answer equals the one dlvsym (not interposed) gives the same caller
    out = tmp_path / "lookups.json"
    code = ("import json, lh_dlsymprobe\n"
            "names = ('malloc', 'free', 'getpid', 'PyObject_Malloc', 'lh_no_such_symbol')\n"
            f"open({str(out)!r}, 'w').write(json.dumps({{n: lh_dlsymprobe.lookups(n) for n in names}}))\n")
    result = run_case("3.13", "finalize", "lh_dlsymprobe", code)
    assert_verdict(result, "clean")
    lookups = json.loads(out.read_text())
    for name in ("malloc", "free", "getpid"):
        next_, next_glibc, default, default_glibc = lookups[name]
        assert next_ == next_glibc != 0, (name, lookups[name])
    # RTLD_DEFAULT: the executable's malloc and free come first in the global
    # scope (dlvsym's GLIBC_2.2.5 asks for libc's own, the one RTLD_NEXT finds);
    # a name only libc defines is libc's either way
    for name in ("malloc", "free"):
        next_, _, default, default_glibc = lookups[name]
        assert default != 0 and default != next_ and default_glibc == next_, (name, lookups[name])
    assert lookups["getpid"][2] == lookups["getpid"][3] == lookups["getpid"][0] != 0
    # the one name whose RTLD_NEXT answer tells the callers apart: nothing
    # after this extension defines it, while asked from the host executable
    # (a dlsym that called glibc's instead of jumping) libpython would
    assert lookups["PyObject_Malloc"][0] == 0 and lookups["PyObject_Malloc"][2] != 0
    assert lookups["lh_no_such_symbol"] == [0, 0, 0, 0]
