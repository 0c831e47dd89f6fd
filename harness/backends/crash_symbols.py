"""Native return addresses -> shared object, function, file:line, after the host died.

The host's crash file carries raw addresses and a copy of /proc/self/maps
(nothing that names a function is async-signal-safe).  Here each address
becomes a shared object and an offset in it (the maps; the object's file is
still there), a function (the object's ELF symbol tables, .symtab's static
functions included) and a file:line (``addr2line``, where the object has
debug info).
"""

from __future__ import annotations

import bisect
import os
import shutil
import struct
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .attribution import object_name
from .elf_symbols import STT_FUNC, table_symbols

#: frames of the host's handler itself, above the interrupted code (dropped)
_HANDLER_FUNCTIONS = {"write_record", "on_fatal_signal", "on_dump_signal"}
#: frames kept in a result
MAX_NATIVE_FRAMES = 40


@dataclass
class Mapping:
    start: int
    end: int
    offset: int
    path: str


# ---- ELF -----------------------------------------------------------------

@dataclass(frozen=True)
class _ElfInfo:
    #: PT_LOAD segments: (file offset, virtual address, size in the file)
    segments: tuple[tuple[int, int, int], ...]
    #: function symbols sorted by address: (start, size, name)
    starts: tuple[int, ...]
    functions: tuple[tuple[int, int, str], ...]
    debug_info: bool


@lru_cache(maxsize=256)
def _elf_info(path: str) -> _ElfInfo | None:
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
    except ImportError:
        return None
    try:
        with open(path, "rb") as stream:
            elf = ELFFile(stream)
            segments = tuple((seg["p_offset"], seg["p_vaddr"], seg["p_filesz"])
                             for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD")
            functions: dict[int, tuple[int, int, str]] = {}
            # .symtab's local names win
            for symbol in table_symbols(elf, (".dynsym", ".symtab")):
                if symbol.kind == STT_FUNC and symbol.defined and symbol.value and symbol.name:
                    functions[symbol.value] = (symbol.value, symbol.size, symbol.name)
            ordered = tuple(sorted(functions.values()))
            debug = elf.get_section_by_name(".debug_info") is not None
    except (OSError, ELFError, ValueError, struct.error):
        return None
    return _ElfInfo(segments, tuple(f[0] for f in ordered), ordered, debug)


def _vaddr(info: _ElfInfo, file_offset: int) -> int | None:
    for p_offset, p_vaddr, size in info.segments:
        if p_offset <= file_offset < p_offset + max(size, 1):
            return file_offset - p_offset + p_vaddr
    return None


def _function_at(info: _ElfInfo, vaddr: int) -> str | None:
    index = bisect.bisect_right(info.starts, vaddr) - 1
    if index < 0:
        return None
    start, size, name = info.functions[index]
    return name if size == 0 or vaddr < start + size else None


def symbol_offset(path: str, name: str) -> int | None:
    """`name`'s address relative to the object's load base (local symbols too)."""
    return _symbol_offsets(path).get(name)


@lru_cache(maxsize=64)
def _symbol_offsets(path: str) -> dict[str, int]:
    """Name -> first address of `path`'s functions: every case asks for the
    traceback dumper's, and a scan of libpython's 20k symbols per case cost
    more than a millisecond of the harness's time each."""
    info = _elf_info(path)
    offsets: dict[str, int] = {}
    for start, _size, function in info.functions if info is not None else ():
        offsets.setdefault(function, start)
    return offsets


def traceback_dumper_offset(libpython: str | None) -> int | None:
    """Where CPython's _Py_DumpTracebackThreads sits in `libpython`: exported on
    3.11/3.12, local (in .symtab only) on 3.10/3.13, absent when stripped."""
    if not libpython or not Path(libpython).exists():
        return None
    return symbol_offset(str(Path(libpython).resolve()), "_Py_DumpTracebackThreads")


# ---- symbolising -----------------------------------------------------------

@dataclass
class Frame:
    address: int
    object_path: str | None
    offset: int | None          # the address relative to the object's load base
    function: str | None
    file: str | None = None
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        name = object_name(self.object_path) or "?"
        if self.file:
            where = f"{self.file}:{self.line}" if self.line else self.file
        else:
            where = f"{name}+{self.offset:#x}" if self.offset is not None else f"{self.address:#x}"
        return {"function": self.function or "??", "object": name, "where": where}


def symbolise(addresses: list[int], pc: int | None, maps: list[Mapping]) -> list[Frame]:
    """The interrupted thread's frames, innermost first, the handler's own dropped."""
    frames: list[Frame] = []
    addresses = _interrupted_frames(addresses, pc)
    for index, address in enumerate(addresses):
        # a return address points after its call: look up the call itself,
        # except for the interrupted instruction
        exact = index == 0 and address == pc
        frames.append(_resolve(address, address if exact else address - 1, maps))
    _add_lines(frames)
    if pc is None and frames:  # no pc: drop the handler by name
        last = max((i for i, f in enumerate(frames) if f.function in _HANDLER_FUNCTIONS), default=None)
        if last is not None:
            frames = frames[last + 2:]  # + the signal trampoline
    return frames[:MAX_NATIVE_FRAMES]


def _interrupted_frames(addresses: list[int], pc: int | None) -> list[int]:
    if pc is not None and pc in addresses:
        return addresses[addresses.index(pc):]
    return list(addresses)


def _resolve(address: int, lookup: int, maps: list[Mapping]) -> Frame:
    for mapping in maps:
        if mapping.start <= lookup < mapping.end:
            info = _elf_info(mapping.path)
            file_offset = lookup - mapping.start + mapping.offset
            vaddr = _vaddr(info, file_offset) if info else None
            function = _function_at(info, vaddr) if info and vaddr is not None else None
            return Frame(address, mapping.path, vaddr if vaddr is not None else file_offset, function)
    return Frame(address, None, None, None)


#: (object path, its mtime and size, offset) -> addr2line's (function, file:line):
#: a sweep's crashes mostly die in the same few CPython functions, and one
#: addr2line process per object and crash cost ~30 ms of CPU each
_LINES: dict[tuple[str, int, int, int], tuple[str, str]] = {}
_LINES_LOCK = threading.Lock()


def _addr2line(tool: str, path: str, offsets: list[int]) -> dict[int, tuple[str, str]]:
    """offset -> (function, file:line) for `path`, asking addr2line only for
    the offsets not answered before for this very file."""
    try:
        stat = os.stat(path)
    except OSError:
        return {}
    identity = (path, stat.st_mtime_ns, stat.st_size)
    with _LINES_LOCK:
        known = {o: _LINES[(*identity, o)] for o in offsets if (*identity, o) in _LINES}
    wanted = sorted(set(offsets) - set(known))
    if wanted:
        try:
            proc = subprocess.run([tool, "-f", "-e", path, *[f"{o:#x}" for o in wanted]],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return known
        lines = proc.stdout.splitlines()
        answered = dict(zip(wanted, zip(lines[0::2], lines[1::2])))
        if proc.returncode == 0 and len(answered) == len(wanted):
            with _LINES_LOCK:
                _LINES.update({(*identity, o): a for o, a in answered.items()})
        known.update(answered)
    return known


def _add_lines(frames: list[Frame]) -> None:
    """file:line from addr2line, one call per object with debug info."""
    tool = shutil.which("addr2line")
    if not tool:
        return
    by_object: dict[str, list[Frame]] = {}
    for frame in frames:
        if frame.object_path and frame.offset is not None:
            info = _elf_info(frame.object_path)
            if info and info.debug_info:
                by_object.setdefault(frame.object_path, []).append(frame)
    for path, members in by_object.items():
        answers = _addr2line(tool, path, [f.offset for f in members])
        for frame in members:
            function, location = answers.get(frame.offset, ("??", "??:0"))
            if not frame.function and function != "??":
                frame.function = function
            source, _, line = location.rpartition(":")
            line = line.split()[0] if line else ""
            if source and source != "??" and line.isdigit() and line != "0":
                frame.file, frame.line = Path(source).name, int(line)
