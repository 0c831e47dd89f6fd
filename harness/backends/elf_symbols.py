"""The entries of an ELF object's symbol tables, unpacked with struct.

pyelftools finds the sections; the entries themselves are read here, 24
bytes (16 on ELF32) a symbol, because pyelftools builds a parsed object per
symbol: libpython3.12's 20k symbols took ~4 s that way, ~50 ms this way, and
a `run --explain memray` of rlcompleter took 3.95 s with them, ~3 s without.
Used by the crash stacks (function at an address) and by the tracing
backends' frame owners (which object defines a function, static ones with
their FILE symbol).
"""

from __future__ import annotations

import struct
from typing import Any, Iterator, NamedTuple

STT_FUNC = 2
STT_FILE = 4
STB_LOCAL = 0


class RawSymbol(NamedTuple):
    """One symbol-table entry, as much of it as the harness reads."""

    name: str
    kind: int          # STT_*: the low nibble of st_info
    bind: int          # STB_*: the high nibble
    defined: bool      # st_shndx is not SHN_UNDEF
    value: int
    size: int


def table_symbols(elf: Any, table_names: tuple[str, ...]) -> Iterator[RawSymbol]:
    """The entries of the named tables of `elf` (a pyelftools ELFFile), table
    by table, each in its order (a static function's FILE symbol is the last
    one before it)."""
    for table_name in table_names:
        table = elf.get_section_by_name(table_name)
        if table is not None:
            strings = elf.get_section(table["sh_link"]).data()
            yield from raw_symbols(table.data(), strings, little_endian=elf.little_endian,
                                   elf64=elf.elfclass == 64)


def raw_symbols(data: bytes, strings: bytes, *, little_endian: bool, elf64: bool) -> Iterator[RawSymbol]:
    """The entries of one symbol table's bytes, names from its string table."""
    order = "<" if little_endian else ">"
    if elf64:   # st_name st_info st_other st_shndx st_value st_size
        layout, (name_at, info_at, shndx_at, value_at, size_at) = order + "IBBHQQ", (0, 1, 3, 4, 5)
    else:       # st_name st_value st_size st_info st_other st_shndx
        layout, (name_at, value_at, size_at, info_at, shndx_at) = order + "IIIBBH", (0, 1, 2, 3, 5)
    entry = struct.calcsize(layout)
    for symbol in struct.iter_unpack(layout, data[: len(data) - len(data) % entry]):
        offset = symbol[name_at]
        end = strings.find(b"\0", offset)
        name = strings[offset:end if end >= 0 else None].decode("utf-8", "replace")
        info = symbol[info_at]
        yield RawSymbol(name, info & 0xF, info >> 4, symbol[shndx_at] != 0, symbol[value_at],
                        symbol[size_at])
