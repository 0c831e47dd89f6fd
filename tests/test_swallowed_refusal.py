"""An error that follows a refusal the code caught is `unsupported`, not `error`.

zoneinfo on 3.12.1 in an isolated subinterpreter: `_datetime` is single-phase,
CPython refuses it ("module _datetime does not support loading in
subinterpreters"), datetime.py catches that and imports `_pydatetime`, and
`_zoneinfo` then raises `AttributeError: module 'datetime' has no attribute
'datetime_CAPI'`.  The error names neither the refused module nor the mode;
the harness reruns the failed case once with CPython's extension constructors
watched and finds the refusal (harness/verdict/ending.py:swallowed_refusal).

The fixtures here are that shape in miniature, on the real host: a pure-Python
module that tries a real single-phase extension (lh_singlephase, which
CPython 3.12+ refuses in an isolated subinterpreter), falls back to nothing,
and fails using it; its clean twin tries lh_callclean (multi-phase, loads
everywhere) instead; and a module whose error is its own stays `error`.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from fixtures.build import EXT_DIR, _target_cflags
from fixtures.targets import python_version_of
from harness.host.build import compile_atomically, find_compiler
from harness.cases.model import Case
from harness.engine import Engine
from harness.host.runner import HostRun
from harness.settings import RunSettings
from harness.verdict.ending import REFUSAL_MARK, mode_refusal, probe_refusals, refusal_line

SUB_PYTHONS = [p for p in ("3.12", "3.13") if python_version_of(p) >= (3, 12)]
REFUSAL = "module lh_singlephase does not support loading in subinterpreters"

FALLBACK = '''\
try:
    import {ext} as _impl
except ImportError:          # the way datetime.py falls back to _pydatetime
    _impl = None
ANSWER = _impl.{attr}()      # AttributeError when the extension was refused
'''

# numpy's way: the refusal re-raised inside a long advice text, whose last
# line is "Original error was: ..."
WRAPS = '''\
try:
    import lh_singlephase
except ImportError as exc:
    raise ImportError("\\n\\nIMPORTANT: PLEASE READ THIS\\n\\nOriginal error was: " + str(exc)) from exc
'''


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.fixture
def run_case(engine, fixture_modules_for, tmp_path: Path):
    (tmp_path / "lh_needs_single.py").write_text(FALLBACK.format(ext="lh_singlephase", attr="answer"))
    (tmp_path / "lh_needs_multi.py").write_text(FALLBACK.format(ext="lh_callclean", attr="f"))
    # its own bug: the extension loads, the attribute does not exist
    (tmp_path / "lh_own_error.py").write_text(FALLBACK.format(ext="lh_callclean", attr="no_such"))
    (tmp_path / "lh_wraps_refusal.py").write_text(WRAPS)
    # simplejson.ordered_dict's shape: a refusal caught first, then an error
    # of its own that every mode raises (Python 2's UserDict)
    (tmp_path / "lh_refused_then_own.py").write_text(
        "try:\n    import lh_singlephase\nexcept ImportError:\n    pass\nfrom UserDict import DictMixin\n")

    def run(python_id: str, mode: str, module: str, code: str | None = None):
        built = fixture_modules_for(python_id)
        settings = RunSettings(python=built.target.executable, mode=mode, backend="counters",
                               cycles=6, warmup=2, timeout=60.0,
                               pythonpath=(str(tmp_path), str(built.directory)))
        return engine.run(Case(name=module, code=code or f"import {module}", module=module), settings)

    return run


@pytest.mark.parametrize("python_id", SUB_PYTHONS)
def test_an_error_after_a_caught_refusal_is_unsupported_with_the_extensions_words(run_case, python_id):
    result = run_case(python_id, "subinterpreter", "lh_needs_single")
    assert result.verdict == "unsupported", result.message
    assert result.message.startswith("lh_singlephase refused this mode (subinterpreter mode, cycle 1")
    assert REFUSAL in result.message
    assert "'NoneType' object has no attribute 'answer'" in result.message
    assert result.evidence["refused_imports"] == [
        {"module": "lh_singlephase", "message": f"ImportError: {REFUSAL}"}]


@pytest.mark.parametrize("python_id", SUB_PYTHONS)
def test_the_twin_whose_extension_loads_is_clean(run_case, python_id):
    result = run_case(python_id, "subinterpreter", "lh_needs_multi")
    assert result.verdict == "clean", result.message
    assert "lh_callclean" in result.evidence["extensions_loaded"]
    assert "refused_imports" not in result.evidence


@pytest.mark.parametrize("python_id", SUB_PYTHONS)
def test_a_modules_own_error_stays_error(run_case, python_id):
    result = run_case(python_id, "subinterpreter", "lh_own_error")
    assert result.verdict == "error", result.message
    assert "module 'lh_callclean' has no attribute 'no_such'" in result.message
    assert "refused_imports" not in result.evidence


@pytest.mark.parametrize("python_id", SUB_PYTHONS)
def test_the_refused_extension_loads_in_legacy_mode_so_the_same_module_is_clean(run_case, python_id):
    # the refusal is the isolated mode's: a legacy subinterpreter loads lh_singlephase
    result = run_case(python_id, "legacy-subinterpreter", "lh_needs_single")
    assert result.verdict == "clean", result.message


@pytest.mark.parametrize("python_id", SUB_PYTHONS)
def test_a_wrapped_refusal_reads_as_cpythons_own_line(run_case, python_id):
    result = run_case(python_id, "subinterpreter", "lh_wraps_refusal")
    assert result.verdict == "unsupported", result.message
    assert result.message == f"ImportError: {REFUSAL}"


@pytest.mark.parametrize("python_id, mode", [("3.12", "finalize"), ("3.13", "finalize"),
                                             ("3.12", "subinterpreter")])
def test_the_extension_that_refused_reinitialisation_is_named_not_the_first_one_missing(
        run_case, python_id, mode):
    # cycle 2 fails at the first import, so _struct (imported after it in
    # cycle 1) is missing too and sorts first: it was named before
    refused = run_case(python_id, mode, "lh_refusereinit", "import lh_refusereinit\nimport _struct")
    twin = run_case(python_id, mode, "lh_reinitok", "import lh_reinitok\nimport _struct")
    assert refused.verdict == "unsupported", refused.message
    assert refused.message.startswith(f"the case loaded lh_refusereinit in cycle 1 only ({mode} mode; "
                                      "missing from cycle 2 on)"), refused.message
    assert "the case's import failed with it" in refused.message
    assert refused.evidence["refused_imports"] == [{
        "module": "lh_refusereinit",
        "message": "ImportError: Interpreter change detected - this module can only be loaded "
                   "into one interpreter per process."}]
    assert twin.verdict == "clean", twin.message


def test_refusal_line_prefers_cpythons_statement_to_a_packages_reraise():
    text = ("Traceback ...\nImportError: module np._core._umath does not support loading in "
            "subinterpreters\n\nThe above exception was the direct cause of the following exception:\n"
            "Traceback ...\nImportError: \n\nIMPORTANT: PLEASE READ THIS\n\nOriginal error was: "
            "module np._core._umath does not support loading in subinterpreters\n")
    assert refusal_line(text) == \
        "ImportError: module np._core._umath does not support loading in subinterpreters"
    assert refusal_line("ImportError: module x does not support loading in subinterpreters") == \
        "ImportError: module x does not support loading in subinterpreters"


def _errored(message: str, cycle: int = 1) -> HostRun:
    run = HostRun()
    run.error = {"type": "RuntimeError", "cycle": cycle, "message": message}
    return run


def test_probe_refusals_reads_the_marked_last_line_only():
    listed = [("_datetime", "ImportError: module _datetime does not support loading in subinterpreters")]
    text = f"Traceback ...\nAttributeError: x\n\nRuntimeError: {REFUSAL_MARK}{listed!r}\n"
    assert probe_refusals(_errored(text)) == listed
    # the case's own error, or a mark that is not the last line, is no refusal list
    assert probe_refusals(_errored("AttributeError: x")) == []
    assert probe_refusals(_errored(f"RuntimeError: {REFUSAL_MARK}{listed!r}\nValueError: later")) == []
    assert probe_refusals(_errored(f"RuntimeError: {REFUSAL_MARK}not a literal(")) == []


def test_only_refusals_of_the_mode_or_of_reinitialisation_count():
    own = ("lh_x", "ImportError: lh_x.so: undefined symbol: foo")
    mode = ("_datetime", "ImportError: module _datetime does not support loading in subinterpreters")
    reinit = ("np", "ImportError: cannot load module more than once per process")
    assert mode_refusal([own], 1) is None
    assert mode_refusal([own, mode], 1) == mode
    # a refusal to initialise again is the extension's limit only after cycle 1
    assert mode_refusal([reinit], 1) is None
    assert mode_refusal([reinit], 2) == reinit


# -- a package's own extension refused from cycle 1 on, its fallback measured ----

PACKAGE_INIT = '''\
try:
    from . import _speedups
except ImportError:          # msgpack, simplejson, PyYAML: pure Python instead
    _speedups = None
'''


def fake_distribution(target, site: Path, package: str, source: str, leaky: int) -> None:
    """An installed distribution (dist-info with a RECORD) whose package tries
    its C `_speedups` and falls back silently, built for `target`."""
    compiler = shlex.split(find_compiler())
    flags = _target_cflags(target) + ["-O0", "-g", "-shared", "-fPIC", f"-I{EXT_DIR}"]
    (site / package).mkdir()
    (site / package / "__init__.py").write_text(PACKAGE_INIT)
    so = f"{package}/_speedups{target.ext_suffix}"
    compile_atomically(compiler + flags + ["-DFIXTURE_NAME=_speedups", f"-DFIXTURE_LEAK={leaky}",
                                           str(EXT_DIR / source)], site / so, f"fixture {so}")
    info = site / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{package}/__init__.py,,\n{so},,\n{info.name}/METADATA,,\n"
                                 f"{info.name}/RECORD,,\n")


@pytest.fixture
def fallback_venv(target_for, tmp_path):
    def make(python_id: str) -> str:
        target = target_for(python_id)
        venv = tmp_path / f"v{python_id}"
        subprocess.run([target.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=300)
        python = str(venv / "bin" / "python")
        site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        # single-phase: CPython 3.12+ refuses it in an isolated subinterpreter
        fake_distribution(target, site, "lhfb", "singlephase.c", 0)
        # (CPython names the module by its m_name, "_speedups")
    # multi-phase, per-interpreter GIL: loads everywhere (the clean twin)
        fake_distribution(target, site, "lhfbok", "refusereinit.c", 0)
        return python
    return make


@pytest.mark.parametrize("python_id", SUB_PYTHONS)
def test_a_package_measured_as_its_fallback_is_unsupported_naming_its_extension(
        engine, fallback_venv, python_id):
    python = fallback_venv(python_id)

    def run(module: str, mode: str):
        settings = RunSettings(python=python, mode=mode, backend="counters", cycles=6, warmup=2,
                               timeout=60.0)
        return engine.run(Case(name=module, code=f"import {module}", module=module), settings)

    fallback, twin = run("lhfb", "subinterpreter"), run("lhfbok", "subinterpreter")
    assert fallback.verdict == "unsupported", fallback.message
    assert fallback.message.startswith(
        "lhfb carried on without its extension lhfb._speedups: CPython refused it in subinterpreter "
        "mode (ImportError: module _speedups does not support loading in subinterpreters)"), \
        fallback.message
    assert fallback.evidence["growth_verdict"] == "clean"
    assert fallback.evidence["refused_imports"][0]["module"] == "lhfb._speedups"
    assert twin.verdict == "clean", twin.message
    assert twin.evidence["extensions_loaded"] == ["lhfbok._speedups"]
    # a legacy subinterpreter loads the single-phase extension: measured, clean
    legacy = run("lhfb", "legacy-subinterpreter")
    assert legacy.verdict == "clean", legacy.message
    # 3.13.0 hands a legacy subinterpreter a single-phase module as a new
    # module object filled from the first interpreter's cached copy: no
    # PyModuleDef, and the host's list missed it until it read __file__ too
    assert legacy.evidence["extensions_loaded"] == ["lhfb._speedups"]


@pytest.mark.parametrize("python_id", SUB_PYTHONS)
def test_an_error_of_its_own_after_a_caught_refusal_stays_an_error(run_case, python_id):
    # the same error in a legacy subinterpreter, where nothing is refused:
    # not "a consequence of the refusal"; its twin lh_needs_single raises
    # only because of the refusal and stays unsupported
    own = run_case(python_id, "subinterpreter", "lh_refused_then_own")
    assert own.verdict == "error", own.message
    assert "No module named 'UserDict'" in own.message and "consequence" not in own.message
    twin = run_case(python_id, "subinterpreter", "lh_needs_single")
    assert twin.verdict == "unsupported" and "a consequence of the refusal" in twin.message, twin.message
