"""An extension that stops importing what its first initialisation imported.

orjson 3.x on 3.12.1 in finalize mode: cycle 1 loads _datetime, _json,
_opcode, _uuid and orjson.orjson; from cycle 2 only orjson.orjson, whose
init keeps from the first interpreter what it imported then.  The verdict
was already `unsupported`, but the message blamed `_datetime` ("it was not
loaded again"), which imports fine alone: it now names every module that went
missing and the extension that, loaded every cycle, stopped importing them.

The fixture (tests/fixtures/ext/importonce.c, built with the other fixtures) is
that shape: its exec imports _struct in the first initialisation of the
process only; its twin in every one, and is clean.
"""

from __future__ import annotations


import pytest

from harness.cases.model import Case
from harness.engine import Engine
from harness.settings import RunSettings


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.mark.parametrize("python_id, mode", [("3.12", "finalize"), ("3.13", "finalize"),
                                             ("3.13", "subinterpreter")])
def test_an_extension_that_stops_importing_is_named_not_what_it_imported(
        engine, fixture_modules_for, python_id, mode):
    built = fixture_modules_for(python_id)
    target, directory = built.target, built.directory

    def run(module: str):
        settings = RunSettings(python=target.executable, mode=mode, backend="counters", cycles=6,
                               warmup=2, timeout=60.0, pythonpath=(str(directory),))
        return engine.run(Case(name=module, code=f"import {module}", module=module), settings)

    once, every = run("lh_importonce"), run("lh_importevery")
    assert once.verdict == "unsupported", once.message
    assert once.message.startswith(f"the case loaded _struct in cycle 1 only ({mode} mode; missing "
                                   "from cycle 2 on), though importing _struct alone works in every "
                                   "cycle: lh_importonce, initialised again in every cycle, no longer "
                                   "imports what its first initialisation did"), once.message
    assert every.verdict == "clean", every.message
    assert every.evidence["extensions_loaded"] == ["_struct", "lh_importevery"]


# -- an import that fails only after cycle 1, not with an ImportError ----------

STALE = '''\
import sys
import {ext}
if "_struct" not in sys.modules:   # what {ext}'s first initialisation imported
    raise TypeError("metaclass conflict (state kept from the first interpreter)")
'''


@pytest.mark.parametrize("python_id, mode", [("3.12", "finalize"), ("3.13", "finalize"),
                                             ("3.13", "subinterpreter")])
def test_an_import_failing_only_after_cycle_1_is_unsupported_whatever_it_raises(
        engine, fixture_modules_for, tmp_path, python_id, mode):
    # PyYAML 6.0.4 on 3.13.0 finalize: `import yaml` raises TypeError
    # (metaclass conflict) in cycle 2, from yaml/cyaml.py: it read `error`
    built = fixture_modules_for(python_id)
    target, directory = built.target, tmp_path   # the .py files here; the extensions there
    (directory / "lh_stale.py").write_text(STALE.format(ext="lh_importonce"))
    (directory / "lh_fresh.py").write_text(STALE.format(ext="lh_importevery"))
    # the same TypeError raised by the case's own code, not by an import
    own = f"{STALE.format(ext='lh_importonce')}"

    def run(name: str, code: str):
        settings = RunSettings(python=target.executable, mode=mode, backend="counters", cycles=6,
                               warmup=2, timeout=60.0,
                               pythonpath=(str(directory), str(built.directory)))
        return engine.run(Case(name=name, code=code, module=name), settings)

    stale, fresh = run("lh_stale", "import lh_stale"), run("lh_fresh", "import lh_fresh")
    assert stale.verdict == "unsupported", stale.message
    assert stale.message.startswith(f"the case's import ran in cycle 1 and failed in cycle 2 ({mode} "
                                    f"mode), in {directory / 'lh_stale.py'}, line 4: TypeError: "
                                    "metaclass conflict"), stale.message
    assert fresh.verdict == "clean", fresh.message
    mine = run("own", own)
    assert mine.verdict == "error", mine.message
    assert "the case raised TypeError in cycle 2" in mine.message


# -- a known refusal's signature from a call, after an import that went through --

# lost: the case loses _struct in cycle 2 (what lh_importonce's first
# initialisation imported); kept: the case imports _struct itself, so no
# extension goes missing (msgpack's shape: its extension loads every cycle)
CALLED = {
    "lost": ("import sys\nimport {ext}\ndef pack():\n"
             "    if '_struct' not in sys.modules:\n"
             "        raise TypeError(\"'NoneType' object is not callable\")\n"),
    "kept": ("import sys\nimport {ext}\nFIRST = '_struct' in sys.modules\nimport _struct\n"
             "def pack():\n    if not FIRST:\n"
             "        raise TypeError(\"'NoneType' object is not callable\")\n"),
}


@pytest.mark.parametrize("shape", ["lost", "kept"])
@pytest.mark.parametrize("python_id, mode", [("3.12", "finalize"), ("3.13", "finalize")])
def test_a_call_failing_only_after_cycle_1_is_named_as_a_call_not_an_import(
        engine, fixture_modules_for, tmp_path, python_id, mode, shape):
    # msgpack 1.2.4 on 3.13.0 finalize: `import msgpack` works in every
    # cycle, `msgpack.packb(...)` raises this TypeError from cycle 2 on, in
    # packb; the message said "its import failed"
    built = fixture_modules_for(python_id)
    source = CALLED[shape]
    (tmp_path / "lh_callstale.py").write_text(source.format(ext="lh_importonce"))
    (tmp_path / "lh_callfresh.py").write_text(source.format(ext="lh_importevery"))
    line = source.splitlines().index("        raise TypeError(\"'NoneType' object is not callable\")") + 1

    def run(name: str):
        settings = RunSettings(python=built.target.executable, mode=mode, backend="counters",
                               cycles=6, warmup=2, timeout=60.0,
                               pythonpath=(str(tmp_path), str(built.directory)))
        return engine.run(Case(name=name, code=f"import {name}\n{name}.pack()", module=name), settings)

    stale, fresh = run("lh_callstale"), run("lh_callfresh")
    assert stale.verdict == "unsupported", stale.message
    missing = "; _struct (loaded in cycle 1) not loaded again" if shape == "lost" else ""
    assert stale.message.startswith(
        f"the case ran in cycle 1 but raised in cycle 2 ({mode} mode), in pack "
        f"({tmp_path / 'lh_callstale.py'}, line {line}): TypeError: 'NoneType' object is not "
        f"callable{missing}; what it calls meets state kept from the first interpreter"), stale.message
    assert "import failed" not in stale.message
    assert fresh.verdict == "clean", fresh.message
