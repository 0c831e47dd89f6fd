"""Native frame -> shared object (harness.native_symbols) on real ELF objects.

Two objects built here define the same static function name, as
simplejson's `_speedups.c` and CPython's `_json.c` both define
`scanstring_unicode`: one keeps its symbol table, the other is stripped the
way wheels often are.  A frame that says `simplejson/_speedups.c` belongs to
the stripped one — its compilation unit names it — never to the object
whose same-named static comes from another .c file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.targets import missing
from harness.backends.attribution import NativeFrame, attribute
from harness.backends.native_symbols import FrameOwners

SUFFIX = ".cpython-312-x86_64-linux-gnu.so"
HEADER = "static inline int fx_inline(int x) { return x * 3 + 1; }\n"
SOURCE = ('#include "fx.h"\n#include <stdlib.h>\n'
          "static void *scanstring_unicode(int n) {{ return malloc((size_t)fx_inline(n)); }}\n"
          "void *entry_{name}(int n) {{ return scanstring_unicode(n); }}\n")


def _build(directory: Path, source_name: str, output: Path, strip: bool, include: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / source_name
    source.write_text(SOURCE.format(name=output.name.split(".")[0]))
    output.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-O0", "-g", "-shared", "-fPIC", f"-I{include}", "-o", str(output),
                    str(source)], check=True, capture_output=True)
    if strip:
        subprocess.run(["strip", "--strip-all", str(output)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    if shutil.which("gcc") is None or shutil.which("strip") is None:
        missing("gcc and strip (binutils) are needed to build the ELF objects")
    root = tmp_path_factory.mktemp("owners")
    build = root / "build"
    build.mkdir()
    (build / "fx.h").write_text(HEADER)
    site = root / "lib" / "python3.12" / "site-packages"
    dynload = root / "lib" / "python3.12" / "lib-dynload"
    speedups = site / "simplejson" / f"_speedups{SUFFIX}"
    json_so = dynload / f"_json{SUFFIX}"
    _build(build / "simplejson", "_speedups.c", speedups, strip=True, include=build)
    _build(build, "_json.c", json_so, strip=False, include=build)
    return {"speedups": str(speedups), "json": str(json_so), "site": str(site),
            "dynload": str(dynload)}


def owners_for(objects) -> FrameOwners:
    return FrameOwners([objects["speedups"], objects["json"]], [objects["site"], objects["dynload"]])


def test_a_frame_of_another_c_file_is_not_taken_by_a_same_named_static(objects):
    owners = owners_for(objects)
    assert owners.owner("scanstring_unicode", "simplejson/_speedups.c") == objects["speedups"]
    frame = NativeFrame("scanstring_unicode", owners.owner("scanstring_unicode", "simplejson/_speedups.c"),
                        "simplejson/_speedups.c", 3021)
    who = attribute([NativeFrame("malloc", "/lib/x86_64-linux-gnu/libc.so.6"), frame],
                    roots=[objects["site"]])
    assert (who.module, who.reason) == ("simplejson._speedups", "extension")


def test_the_object_whose_symbols_name_the_file_keeps_its_frames(objects):
    owners = owners_for(objects)
    assert owners.owner("scanstring_unicode", "_json.c") == objects["json"]
    assert owners.owner("scanstring_unicode", "/src/cpython/Modules/_json.c") == objects["json"]


def test_a_frame_of_an_unknown_c_file_has_no_owner(objects):
    # neither object's symbols nor path fit: better unowned than wrong
    assert owners_for(objects).owner("scanstring_unicode", "other/_elsewhere.c") is None


def test_a_header_inline_function_belongs_to_the_object_that_included_it(objects):
    # fx_inline is static in _json.c's object only (the other is stripped)
    assert owners_for(objects).owner("fx_inline", "fx.h") == objects["json"]
