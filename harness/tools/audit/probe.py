"""Runs inside the *target* Python (python -I -S probe.py ...): stdlib only.

    probe.py list stdlib|packages|all [PATH...]  -> the extension modules, one JSON object
    probe.py init NAME [PATH...]                 -> how NAME initializes, one JSON object

PATHs go first on sys.path (-I ignores PYTHONPATH; the harness passes what
the host would see).

`init` calls the module's PyInit_<name> through ctypes, without the import
system, and looks at what it returns: a module object means single-phase
init (PEP 3121); a `moduledef` object means multi-phase init (PEP 489,
PyModuleDef_Init), whose m_slots array then tells which
Py_mod_multiple_interpreters value it declares (3.12+) and Py_mod_gil
(3.13+).  No source is needed.  The harness runs one process per module, so
an init that crashes costs only its own row.
"""

import ctypes
import importlib.machinery
import importlib.util
import json
import os
import site
import sys

# Slot ids and values from CPython's Include/moduleobject.h
SLOT_CREATE, SLOT_EXEC, SLOT_MULTIPLE_INTERPRETERS, SLOT_GIL = 1, 2, 3, 4
MULTIPLE_INTERPRETERS = {0: "not supported", 1: "supported", 2: "per-interpreter GIL"}
GIL = {0: "used", 1: "not used"}
MAX_SLOTS = 64  # m_slots ends with {0, NULL}; a longer array means a misread


class ModuleDef(ctypes.Structure):
    """PyModuleDef after its PyObject_HEAD (whose size this build tells us)."""

    _fields_ = [
        ("ob_head", ctypes.c_byte * object.__basicsize__),
        ("m_init", ctypes.c_void_p), ("m_index", ctypes.c_ssize_t), ("m_copy", ctypes.c_void_p),
        ("m_name", ctypes.c_char_p), ("m_doc", ctypes.c_char_p), ("m_size", ctypes.c_ssize_t),
        ("m_methods", ctypes.c_void_p), ("m_slots", ctypes.c_void_p),
    ]


class Slot(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_int), ("value", ctypes.c_void_p)]


def extension_suffixes():
    return tuple(importlib.machinery.EXTENSION_SUFFIXES)


def stdlib_modules():
    found, builtins = [], []
    for name in sorted(getattr(sys, "stdlib_module_names", ())):
        try:
            spec = importlib.util.find_spec(name)
        except Exception:
            continue
        if spec is None:
            continue
        if spec.origin == "built-in":
            builtins.append(name)
        elif isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            found.append({"name": name, "origin": spec.origin, "source": "stdlib",
                          "kind": "extension"})
    return found, builtins


def package_modules(stdlib_names):
    """Extension files under site-packages, named from their path."""
    found, seen = [], set()
    suffixes = extension_suffixes()
    for root in site.getsitepackages():
        if not os.path.isdir(root):
            continue
        for directory, dirs, files in os.walk(root):
            rel = os.path.relpath(directory, root)
            parts = [] if rel == "." else rel.split(os.sep)
            if any(not p.isidentifier() for p in parts):
                dirs[:] = []  # *.dist-info, numpy.libs, __pycache__-like data trees
                continue
            dirs.sort()
            for filename in sorted(files):
                suffix = next((s for s in suffixes if filename.endswith(s)), None)
                if suffix is None:
                    continue
                stem = filename[: -len(suffix)]
                if not stem.isidentifier():
                    continue
                name = ".".join(parts + [stem])
                if name in seen or name.split(".")[0] in stdlib_names:
                    continue
                seen.add(name)
                found.append({"name": name, "origin": os.path.join(directory, filename),
                              "source": "package", "kind": "extension", "site": root})
    return found


def list_modules(scope):
    stdlib, builtins = stdlib_modules()
    modules = []
    if scope in ("stdlib", "all"):
        modules += stdlib
    if scope in ("packages", "all"):
        modules += package_modules(set(getattr(sys, "stdlib_module_names", ())))
    return {"modules": modules, "builtins": builtins}


def init_symbol(short_name):
    try:
        short_name.encode("ascii")
        return "PyInit_" + short_name
    except UnicodeEncodeError:  # PEP 489: non-ASCII names use punycode
        return "PyInitU_" + short_name.encode("punycode").decode("ascii").replace("-", "_")


def inspect_init(name):
    spec = importlib.util.find_spec(name)  # a dotted name imports its parents
    if spec is None:
        return {"error": f"no module named {name!r}"}
    short = name.rpartition(".")[2]
    if spec.origin == "built-in":
        library, origin, kind = ctypes.pythonapi, "built-in", "builtin"
    elif isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        # PyDLL: the GIL stays held while PyInit runs, as the import system does
        library, origin, kind = ctypes.PyDLL(spec.origin), spec.origin, "extension"
    else:
        return {"error": f"{name} is not an extension module ({type(spec.loader).__name__})",
                "origin": spec.origin, "kind": "python"}
    info = {"origin": origin, "kind": kind}
    try:
        init = getattr(library, init_symbol(short))
    except AttributeError:
        return dict(info, error=f"{init_symbol(short)} is not exported by {origin}")
    init.restype = ctypes.py_object
    init.argtypes = []
    try:
        returned = init()
    except BaseException as exc:  # the module's own init failed (needs the import system?)
        return dict(info, error=f"PyInit raised {type(exc).__name__}: {exc}")
    if type(returned).__name__ == "moduledef":
        # PyInit hands back the static def with a borrowed reference, which
        # ctypes takes as its own: one extra reference keeps the def from
        # being "freed" (free() of static memory aborts the probe)
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(returned))
        return dict(info, init="multi-phase", **read_def(id(returned)))
    if isinstance(returned, type(sys)):
        return dict(info, init="single-phase")
    return dict(info, error=f"PyInit returned a {type(returned).__name__}, neither module nor moduledef")


def read_def(address):
    """m_name, m_size and the slots of a PyModuleDef at `address` (id() of the object)."""
    moduledef = ModuleDef.from_address(address)
    found = {"m_name": (moduledef.m_name or b"").decode("utf-8", "replace"),
             "m_size": moduledef.m_size, "exec_slots": 0, "create_slot": False,
             "multiple_interpreters": None, "gil": None}
    if not moduledef.m_slots:
        return found
    for index in range(MAX_SLOTS):
        slot = Slot.from_address(moduledef.m_slots + index * ctypes.sizeof(Slot))
        value = slot.value or 0
        if slot.slot == 0:
            return found
        if slot.slot == SLOT_EXEC:
            found["exec_slots"] += 1
        elif slot.slot == SLOT_CREATE:
            found["create_slot"] = True
        elif slot.slot == SLOT_MULTIPLE_INTERPRETERS:
            found["multiple_interpreters"] = MULTIPLE_INTERPRETERS.get(value, f"unknown value {value}")
        elif slot.slot == SLOT_GIL:
            found["gil"] = GIL.get(value, f"unknown value {value}")
    found["slots_note"] = f"m_slots not terminated within {MAX_SLOTS} entries"
    return found


def main(argv):
    sys.path[:0] = argv[3:]
    argv = argv[:3]
    if len(argv) == 3 and argv[1] == "list":
        print(json.dumps(list_modules(argv[2])))
    elif len(argv) == 3 and argv[1] == "init":
        print(json.dumps(inspect_init(argv[2])), flush=True)
        # no finalization: the module was initialized behind the import
        # system's back, and its teardown is not what is being asked
        os._exit(0)
    else:
        print(json.dumps({"error": "usage: probe.py list SCOPE | init NAME"}))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
