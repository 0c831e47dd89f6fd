"""An extension that stops importing what its first initialisation imported.

orjson 3.x on 3.12.1 in finalize mode: cycle 1 loads _datetime, _json,
_opcode, _uuid and orjson.orjson; from cycle 2 only orjson.orjson, whose
init keeps from the first interpreter what it imported then.  The verdict
was already `unsupported`, but the message blamed `_datetime` ("it was not
loaded again"), which imports fine alone: it now names every module that went
missing and the extension that, loaded every cycle, stopped importing them.

The fixture (tests/fixtures/ext/importonce.c, built here for each target) is
that shape: its exec imports _struct in the first initialisation of the
process only; its twin in every one, and is clean.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fixtures.build import EXT_DIR, _target_cflags
from harness.cases.model import Case
from harness.engine import Engine
from harness.host.build import compile_atomically, find_compiler
from harness.settings import RunSettings


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def build(target, dest: Path) -> Path:
    compiler = shlex.split(find_compiler())
    flags = _target_cflags(target) + ["-O0", "-g", "-Wall", "-Wextra", "-shared", "-fPIC", f"-I{EXT_DIR}"]
    for name, leaky in (("lh_importonce", 1), ("lh_importevery", 0)):
        compile_atomically(compiler + flags + [f"-DFIXTURE_NAME={name}", f"-DFIXTURE_LEAK={leaky}",
                                               str(EXT_DIR / "importonce.c")],
                           dest / f"{name}{target.ext_suffix}", f"fixture {name}")
    return dest


@pytest.mark.parametrize("python_id, mode", [("3.12", "finalize"), ("3.13", "finalize"),
                                             ("3.13", "subinterpreter")])
def test_an_extension_that_stops_importing_is_named_not_what_it_imported(
        engine, target_for, tmp_path, python_id, mode):
    target = target_for(python_id)
    directory = build(target, tmp_path)

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
