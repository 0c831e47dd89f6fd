"""Compile the C host (and the harness's own probe extension) per target Python.

Built with the target's ``pythonX.Y-config --embed`` flags, rpath to its shared
libpython, and cached by (interpreter realpath, version, source hash, flags) in
the user cache dir, so a second run costs nothing and parallel builders
(sweep workers, xdist) never see a half-written binary.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import HostBuildError
from .target import TargetPython

HOST_SOURCE = Path(__file__).with_name("host.c")
#: the C allocator's interposer, compiled into the counting host only
NATIVE_SOURCES = (Path(__file__).with_name("native_alloc.c"), Path(__file__).with_name("native_alloc.h"))
#: what the counting host exports from the executable, so that every
#: object (extensions loaded later included) binds these names to it
INTERPOSED = ("malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
              "aligned_alloc", "memalign", "valloc", "pvalloc")
PROBE_EXT_SOURCE = Path(__file__).with_name("probe_ext.c")
PROBE_EXT_MODULE = "_leak_harness_probe"


def cache_root() -> Path:
    """Where built hosts live: $LEAK_HARNESS_CACHE, else the XDG user cache dir."""
    explicit = os.environ.get("LEAK_HARNESS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base, "leak-harness")


def find_compiler() -> str:
    """$CC when set (and then only it), else the first of cc, gcc, clang on PATH."""
    explicit = os.environ.get("CC")
    if explicit:
        if shutil.which(shlex.split(explicit)[0]):
            return explicit
        raise HostBuildError(f"the compiler in $CC ({explicit}) was not found; fix $CC or unset it")
    for candidate in ("cc", "gcc", "clang"):
        if shutil.which(candidate):
            return candidate
    raise HostBuildError(
        "no C compiler found (tried cc, gcc, clang on PATH); install one, "
        "e.g. `apt-get install gcc`"
    )


def config_script(target: TargetPython) -> Path:
    """The target's pythonX.Y-config, next to its real executable or in BINDIR."""
    names = [
        f"python{target.short_version}{target.abiflags}-config",
        f"python{target.short_version}-config",
    ]
    if target.debug:
        names.insert(0, f"python{target.short_version}-dbg-config")
    dirs = [Path(target.realpath).parent, Path(target.executable).parent, Path(target.bindir)]
    for directory in dirs:
        for name in names:
            candidate = directory / name
            if candidate.exists():
                return candidate
    raise HostBuildError(
        f"no {names[-1]} for Python {target.label} at {target.executable}; "
        f"install its development files (Debian: `apt-get install python{target.short_version}-dev`"
        f"{'; for the debug build python' + target.short_version + '-dbg' if target.debug else ''})"
    )


def _config_flags(script: Path, *args: str) -> list[str]:
    try:
        proc = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise HostBuildError(f"cannot run {script}: {exc}") from None
    if proc.returncode != 0:
        if "--embed" in args:
            raise HostBuildError(
                f"{script} does not support --embed (Python 3.8+ config scripts do); "
                "install the target's development files"
            )
        raise HostBuildError(f"{script} {' '.join(args)} failed: {proc.stderr.strip()}")
    return shlex.split(proc.stdout)


def embed_flags(target: TargetPython) -> tuple[list[str], list[str]]:
    """(cflags, ldflags) for embedding the target; refuses a static-only libpython."""
    if not target.shared:
        raise HostBuildError(
            f"Python {target.label} at {target.executable} has only a static libpython "
            f"({target.ldlibrary or 'no shared library'}); extension modules cannot share its "
            "runtime with an embedding host. Rebuild it with --enable-shared "
            "(pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install VERSION)"
        )
    script = config_script(target)
    cflags = _config_flags(script, "--cflags", "--embed")
    ldflags = _config_flags(script, "--ldflags", "--embed")
    if not any(flag.startswith("-lpython") for flag in ldflags):
        raise HostBuildError(f"{script} --ldflags --embed names no libpython: {' '.join(ldflags)}")
    rpaths = [f"-Wl,-rpath,{flag[2:]}" for flag in ldflags if flag.startswith("-L")]
    if target.libdir:
        rpaths.append(f"-Wl,-rpath,{target.libdir}")
    # -O2 and our warnings after the target's flags, which may carry -Og
    return cflags + ["-O2"], ldflags + rpaths + ["-ldl"]


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def compile_atomically(argv: list[str], output: Path, what: str) -> None:
    """Run `argv -o TMP` and rename TMP to `output`: concurrent builders (sweep
    workers, xdist) never see a half-written binary, and race harmlessly."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=output.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        proc = subprocess.run(argv + ["-o", tmp], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise HostBuildError(
                f"compiling the {what} failed ({argv[0]} exit {proc.returncode}):\n"
                f"$ {shlex.join(argv)}\n{proc.stderr.strip()[-3000:]}"
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_host(target: TargetPython, native: bool = True) -> Path:
    """Path of a host binary for `target`, compiling it on first use.

    `native`: with the C allocator counted (native_alloc.c interposes malloc
    & co. in the executable); False for the backends that replace malloc
    themselves (valgrind, memray), which must see the program's calls alone.
    A cached host needs no compiler: the key is what the binary depends on
    (interpreter, version, sources, flags), checked before looking for one.
    """
    cflags, ldflags = embed_flags(target)
    sources = [HOST_SOURCE]
    if native:
        cflags = cflags + ["-DLH_NATIVE_COUNTING=1"]
        # libgcc_s: _Unwind_Backtrace, to name the caller of a malloc made inside libc
        ldflags = ldflags + [f"-Wl,--export-dynamic-symbol={name}" for name in INTERPOSED] + ["-lgcc_s"]
        sources.append(NATIVE_SOURCES[0])
    texts = [p.read_bytes() for p in (HOST_SOURCE, *NATIVE_SOURCES)]
    key = _digest(target.realpath, target.version, *texts, *cflags, *ldflags)
    kind = "native" if native else "plain"
    binary = cache_root() / "hosts" / f"host-{target.label}-{kind}-{key}"
    if not binary.exists():
        compiler = find_compiler()
        argv = shlex.split(compiler) + cflags + [str(p) for p in sources] + ldflags
        compile_atomically(argv, binary, f"host for Python {target.label}")
    return binary


def build_probe_extension(target: TargetPython) -> Path:
    """Directory holding the harness's tiny clean extension, for the import control.

    3.12/3.13 leave about one block behind per extension import and cycle in
    the import machinery itself; importing a known-clean extension measures
    that share so a clean user extension is not flagged for it.
    """
    script = config_script(target)
    cflags = _config_flags(script, "--cflags")
    source = PROBE_EXT_SOURCE.read_bytes()
    key = _digest(target.realpath, target.version, source, *cflags)
    directory = cache_root() / "probe" / f"{target.label}-{key}"
    library = directory / f"{PROBE_EXT_MODULE}{target.ext_suffix}"
    if not library.exists():
        compiler = find_compiler()
        argv = shlex.split(compiler) + cflags + ["-O2", "-shared", "-fPIC", str(PROBE_EXT_SOURCE)]
        compile_atomically(argv, library, f"probe extension for Python {target.label}")
    return directory
