"""harness.backends.elf_symbols unpacks symbol tables itself (pyelftools'
per-symbol objects cost seconds on libpython): every entry must be what
pyelftools parses, on a real libpython, a fixture extension and libc."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends.elf_symbols import table_symbols

TABLES = (".symtab", ".dynsym")


def pyelftools_entries(path: Path) -> list[tuple]:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.enums import ENUM_ST_INFO_BIND, ENUM_ST_INFO_TYPE
    kinds = {name: value for name, value in ENUM_ST_INFO_TYPE.items() if isinstance(value, int)}
    binds = {name: value for name, value in ENUM_ST_INFO_BIND.items() if isinstance(value, int)}
    out = []
    with open(path, "rb") as stream:
        elf = ELFFile(stream)
        for name in TABLES:
            table = elf.get_section_by_name(name)
            for symbol in table.iter_symbols() if table is not None else ():
                info = symbol["st_info"]
                out.append((symbol.name, kinds[info["type"]], binds[info["bind"]],
                            symbol["st_shndx"] != "SHN_UNDEF", symbol["st_value"], symbol["st_size"]))
    return out


def own_entries(path: Path) -> list[tuple]:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as stream:
        return [tuple(symbol) for symbol in table_symbols(ELFFile(stream), TABLES)]


@pytest.mark.parametrize("which", ["libpython", "fixture", "libc"])
def test_every_symbol_is_what_pyelftools_reads(which, target_for, fixture_modules_for):
    target = target_for("3.12")
    if which == "libpython":
        path = Path(target.libdir) / target.ldlibrary
    elif which == "fixture":
        path = fixture_modules_for("3.12").directory / f"lh_mallocleak{target.ext_suffix}"
    else:
        path = Path("/usr/lib/x86_64-linux-gnu/libc.so.6")
        if not path.exists():
            pytest.skip("no multiarch libc here")
    assert path.exists(), path
    theirs = pyelftools_entries(path)
    assert len(theirs) > 20, "too few symbols to compare"
    assert own_entries(path) == theirs
    # the kinds the owners read are among them: functions, and (with .symtab) files
    kinds = {entry[1] for entry in theirs}
    assert 2 in kinds and (which == "libc" or 4 in kinds)
