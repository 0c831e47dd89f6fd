"""Which loaded shared object a resolved native frame belongs to.

memray resolves native frames to (function, source file, line) from debug
info, not to the shared object.  Static names such as `exec_module` or
`module_exec`, and even source file names, repeat across extension modules,
so the object is found from the symbol tables of the objects the process had
mapped: an object owns a frame when it defines the function — a static
(local) one only together with the FILE symbol that precedes it in .symtab
naming the frame's source file, which tells `mallocleak.c`'s `exec_module`
apart from `_json.c`'s.  When the symbols cannot tell (a wheel's stripped
.so keeps no static symbols), the frame's compilation unit can: memray's
`simplejson/_speedups.c` names the module `simplejson._speedups` that the
object `site-packages/simplejson/_speedups.cpython-312-....so` holds.  A
static function of *another* .c file is never taken as the frame's (that
is how `_json` was once blamed for simplejson's `scanstring_unicode`); only
a header's inline function is defined in whichever .c included it.  ELF is
read with pyelftools; only extension modules are read (the frames of
libpython, libc and the host stay unowned, which is all attribution needs
of them).
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Iterable, Iterator

from .attribution import module_from_object
from .elf_symbols import STB_LOCAL, STT_FILE, STT_FUNC, RawSymbol, table_symbols
from ..errors import HarnessError

#: source files whose functions may be compiled into any object (inline
#: functions of headers), not only the object built from them
_HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".inc")


@dataclass(frozen=True)
class ObjectSymbols:
    """Function symbols of one ELF object."""

    path: str
    global_functions: frozenset[str]
    #: static function -> the source file basenames it is defined in
    local_functions: dict[str, frozenset[str]]


def read_symbols(path: str) -> ObjectSymbols:
    """Function symbols of `path` from .symtab (all) and .dynsym (exported)."""
    stat = os.stat(path)
    return _read_symbols(path, stat.st_mtime_ns, stat.st_size)


def _elf_symbols(path: str) -> Iterator[RawSymbol]:
    """The symbols of `path`'s .symtab then .dynsym, in table order (STT_FILE
    entries included: a static function's file is the last one before it).
    Nothing for a file that is unreadable or not ELF: it owns nothing."""
    try:
        from elftools.elf.elffile import ELFFile
        from elftools.common.exceptions import ELFError
    except ImportError as exc:  # a dependency of the project: only a broken install lacks it
        raise HarnessError("pyelftools is missing: pip install pyelftools") from exc
    try:
        with open(path, "rb") as stream:
            symbols = list(table_symbols(ELFFile(stream), (".symtab", ".dynsym")))
    except (OSError, ELFError, ValueError, struct.error):
        return iter(())
    return iter(symbols)


@lru_cache(maxsize=512)
def _read_symbols(path: str, mtime_ns: int, size: int) -> ObjectSymbols:
    globals_: set[str] = set()
    locals_: dict[str, set[str]] = {}
    current_file = ""
    for symbol in _elf_symbols(path):
        if symbol.kind == STT_FILE:
            current_file = PurePosixPath(symbol.name).name
        elif symbol.kind == STT_FUNC and symbol.name and symbol.defined:
            if symbol.bind == STB_LOCAL:
                locals_.setdefault(symbol.name, set()).add(current_file)
            else:
                globals_.add(symbol.name)
    return ObjectSymbols(path, frozenset(globals_),
                         {name: frozenset(files) for name, files in locals_.items()})


class FrameOwners:
    """Maps (function, source file) to the one object among `objects` that defines it."""

    def __init__(self, objects: Iterable[str], roots: Iterable[str] = ()) -> None:
        self.objects = [read_symbols(p) for p in objects if os.path.exists(p)]
        roots = list(roots)
        #: object path -> its module's dotted parts (`simplejson._speedups`)
        self._modules = {obj.path: tuple((module_from_object(obj.path, roots) or "").split("."))
                         for obj in self.objects}
        self._cache: dict[tuple[str, str | None], str | None] = {}

    def owner(self, function: str | None, source_file: str | None) -> str | None:
        """The object's path, or None when no object (or more than one) fits."""
        if not function:
            return None
        key = (function, source_file)
        if key not in self._cache:
            self._cache[key] = self._find(function, source_file)
        return self._cache[key]

    def _find(self, function: str, source_file: str | None) -> str | None:
        base = PurePosixPath(source_file).name if source_file else None
        header = base is not None and base.endswith(_HEADER_SUFFIXES)
        # best first: a static function in the frame's file; the object the
        # frame's compilation unit names (symbols or not); an exported one (or
        # a static one with nothing to check the file against); for a header,
        # a static one from another file (the FILE symbol names the .c that
        # included it)
        exact, unit, loose, other_file = [], [], [], []
        for obj in self.objects:
            files = obj.local_functions.get(function)
            if source_file and not header and self._unit_names(obj.path, source_file):
                unit.append(obj.path)
            if files is not None:
                if base is not None and base in files:
                    exact.append(obj.path)
                elif base is None or files == {""}:
                    loose.append(obj.path)
                elif header:
                    other_file.append(obj.path)
            elif function in obj.global_functions:
                loose.append(obj.path)
        for found in (exact, unit, loose, other_file):
            if len(found) == 1:
                return found[0]
        return None


    def _unit_names(self, object_path: str, source_file: str) -> bool:
        """Does the source file's path end with the object's module path
        (`.../simplejson/_speedups.c` for `simplejson._speedups`)?"""
        module = self._modules.get(object_path) or ("",)
        if module == ("",):
            return False
        path = PurePosixPath(source_file)
        parts = (*path.parent.parts, path.stem)
        return len(parts) >= len(module) and parts[-len(module):] == module


def function_at(path: str, address: int) -> str | None:
    """The function of `path` whose symbol spans `address` (an ELF virtual
    address: a run-time address minus the object's load base), or None."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    starts, spans = _function_spans(path, stat.st_mtime_ns, stat.st_size)
    index = bisect.bisect_right(starts, address) - 1
    if index < 0:
        return None
    start, end, name = spans[index]
    return name if start <= address < end else None


@lru_cache(maxsize=256)
def _function_spans(path: str, mtime_ns: int, size: int) -> tuple[list[int], list[tuple[int, int, str]]]:
    """Sorted (start, end, name) of the defined functions of .symtab and .dynsym."""
    spans: dict[int, tuple[int, int, str]] = {}
    for symbol in _elf_symbols(path):
        if symbol.kind == STT_FUNC and symbol.name and symbol.defined and symbol.size:
            spans.setdefault(symbol.value, (symbol.value, symbol.value + symbol.size, symbol.name))
    ordered = sorted(spans.values())
    return [s for s, _, _ in ordered], ordered
