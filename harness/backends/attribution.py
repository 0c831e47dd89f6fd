"""Native frames -> the module they belong to.  Pure functions, no I/O.

Shared by the backends that see native stacks (valgrind, memray): given an
allocation's stack, innermost frame first, find the Python module that asked
for the memory.  The walk skips what is never the culprit — the allocator,
libc, the dynamic loader, the embedding host — and libpython, whose frames
only say *how* the memory was taken (PyTuple_New, the import machinery), not
*for whom*.  The first frame in a Python extension module names it:

- ``.../lib-dynload/_json.cpython-312-x86_64-linux-gnu.so`` -> ``_json``
- ``.../site-packages/foo/_bar.so`` -> ``foo._bar`` (the path below a
  known root gives the package)
- a frame in ``PyInit_X`` -> ``X``

A stack that stays in libpython is charged to the Python-level module the
case targets (its code ran there), else to ``cpython``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable, Sequence

CPYTHON = "cpython"

#: Objects never blamed: allocator shims, libc and friends, the loader.
_SYSTEM_OBJECT = re.compile(
    r"^(?:vgpreload_\w+|libc[.-]|libc\.so|ld-linux[\w.-]*|ld-\d[\w.-]*|ld\.so|libpthread[.-]"
    r"|libdl[.-]|libm[.-]|librt[.-]|libgcc_s[.-]|libstdc\+\+[.-]|libmemray|_memray)"
)
_LIBPYTHON = re.compile(r"^libpython\d+\.\d+\w*\.so")
_PYTHON_EXECUTABLE = re.compile(r"^python\d*(?:\.\d+)?\w*$")
#: Python extension file names: name.cpython-312-x86_64-linux-gnu.so,
#: name.abi3.so, name.cpython-312d-....so, or plain name.so.
_EXTENSION = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\.(?:cpython-\w+(?:-[\w-]+)?|abi\d+))?\.so$")
_PYINIT = re.compile(r"^PyInit_(?P<name>\w+)$")
#: Directories whose contents are importable by their relative path.
_ROOT_NAMES = {"site-packages", "dist-packages", "lib-dynload"}
_STDLIB_DIR = re.compile(r"^python\d+\.\d+\w*$")


@dataclass(frozen=True)
class NativeFrame:
    """What attribution needs of a frame; backends convert theirs to this."""

    function: str | None
    object_path: str | None
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Attribution:
    module: str
    frame_index: int | None   # the frame that named it, None when none did
    reason: str               # "extension" | "PyInit" | "library" | "case" | "cpython"


def object_name(path: str | None) -> str:
    return PurePosixPath(path).name if path else ""


def is_system_object(path: str | None) -> bool:
    return bool(_SYSTEM_OBJECT.match(object_name(path)))


def is_interpreter_object(path: str | None) -> bool:
    name = object_name(path)
    return bool(_LIBPYTHON.match(name) or _PYTHON_EXECUTABLE.match(name))


def module_from_object(path: str | None, roots: Iterable[str] = ()) -> str | None:
    """The module name of an extension's shared object, dotted where the path tells."""
    name = object_name(path)
    match = _EXTENSION.match(name)
    if not match:
        return None
    if name.startswith("lib") and ".cpython-" not in name and ".abi" not in name:
        return None  # libfoo.so is a library, not an importable module
    leaf = match.group("name")
    parts = PurePosixPath(path).parent.parts
    packages = _package_parts(parts, [PurePosixPath(r).parts for r in roots])
    return ".".join([*packages, leaf])


def _package_parts(parts: tuple[str, ...], roots: list[tuple[str, ...]]) -> list[str]:
    """The directories between the innermost known root and the file, if they look like packages."""
    start = None
    for root in roots:
        if root and parts[: len(root)] == root and (start is None or len(root) > start):
            start = len(root)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _ROOT_NAMES or _STDLIB_DIR.match(parts[i]):
            if start is None or i + 1 > start:
                start = i + 1
            break
    if start is None:
        return []
    rest = list(parts[start:])
    return rest if all(p.isidentifier() for p in rest) else []


def module_from_function(function: str | None) -> str | None:
    """`PyInit_X` -> X: the module init function names its module."""
    match = _PYINIT.match(function or "")
    return match.group("name") if match else None


def attribute(frames: Sequence[NativeFrame], case_module: str | None = None,
              host_objects: Iterable[str] = (), roots: Iterable[str] = ()) -> Attribution:
    """Who an allocation belongs to, from its stack (innermost frame first)."""
    hosts = {object_name(h) for h in host_objects}
    roots = list(roots)
    first_library: tuple[int, str] | None = None
    for index, frame in enumerate(frames):
        name = object_name(frame.object_path)
        if is_system_object(frame.object_path) or name in hosts or is_interpreter_object(frame.object_path):
            continue
        from_init = module_from_function(frame.function)
        module = module_from_object(frame.object_path, roots)
        if module:
            return Attribution(module, index, "extension")
        if from_init:
            return Attribution(from_init, index, "PyInit")
        if first_library is None and name:
            first_library = (index, _library_name(name))
    if first_library is not None:
        return Attribution(first_library[1], first_library[0], "library")
    if case_module:
        return Attribution(case_module, None, "case")
    return Attribution(CPYTHON, None, "cpython")


def _library_name(name: str) -> str:
    """libffi.so.8 -> libffi"""
    return name.split(".so")[0] or name


def short_stack(frames: Sequence[NativeFrame], start: int | None, length: int = 6,
                skip_objects: Iterable[str] = ()) -> list[dict]:
    """A few frames for a report: from the attributed one (or the first
    non-allocator frame) outward, as {"function", "where"}."""
    skip = {object_name(s) for s in skip_objects}

    def shown(frame: NativeFrame) -> bool:
        return not is_system_object(frame.object_path) and object_name(frame.object_path) not in skip

    if start is None:
        begin = next((i for i, f in enumerate(frames) if shown(f)), 0)
    else:
        # the call that allocated (PyTuple_New, ...) just above the attributed frame, if any
        begin = start
        if start > 0 and shown(frames[start - 1]):
            begin = start - 1
    out = []
    for frame in frames[begin: begin + length]:
        if frame.file:
            where = f"{frame.file}:{frame.line}" if frame.line is not None else frame.file
        else:
            where = object_name(frame.object_path) or "?"
        out.append({"function": frame.function or "???", "where": where})
    return out


#: Python frames that say *how* code ran, never *for whom*: the import
#: system (frozen or not); the harness's own hook frames are dropped by
#: the backends before this.
_PY_MACHINERY = re.compile(r"^<frozen importlib\._bootstrap(?:_external)?>$|/importlib/_bootstrap(?:_external)?\.py$")
_FROZEN = re.compile(r"^<frozen (?P<name>[\w.]+)>$")


def is_python_machinery(filename: str) -> bool:
    return bool(_PY_MACHINERY.search(filename or ""))


def module_from_source_file(filename: str | None, roots: Iterable[str] = ()) -> str | None:
    """A Python frame's file -> its module: the path below the longest
    `roots` entry (sys.path) holding it, dotted (`.../json/decoder.py` ->
    `json.decoder`, `pkg/__init__.py` -> `pkg`); `<frozen zipimport>` ->
    `zipimport`.  None for code without a file (`<string>`, `<unknown>`)."""
    if not filename:
        return None
    frozen = _FROZEN.match(filename)
    if frozen:
        return frozen.group("name")
    if filename.startswith("<"):
        return None
    path = PurePosixPath(filename)
    best: tuple[str, ...] | None = None
    for root in roots:
        parts = PurePosixPath(root).parts
        if parts and path.parts[: len(parts)] == parts and (best is None or len(parts) > len(best)):
            best = parts
    rest = list(path.parts[len(best):]) if best else [path.name]
    if not rest:
        return None
    leaf = rest[-1]
    rest[-1] = leaf.split(".", 1)[0]
    if rest[-1] == "__init__" and len(rest) > 1:
        rest.pop()
    return ".".join(rest) if all(p.isidentifier() for p in rest) else rest[-1]
