"""Compile the C host (and the harness's own probe extension) per target Python.

Built with the target's ``pythonX.Y-config --embed`` flags, rpath to its shared
libpython, and cached by (interpreter realpath, version, source hash, flags) in
the user cache dir, so a second run costs nothing and parallel builders
(sweep workers, xdist) never see a half-written binary.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import secrets
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from ..errors import CompileError, HostBuildError
from .target import TargetPython
from .strays import kill_group

HOST_SOURCE = Path(__file__).with_name("host.c")
#: compiled with host.c into one binary (the crash and hang handlers)
CRASH_REPORT_SOURCES = (Path(__file__).with_name("crash_report.c"),
                        Path(__file__).with_name("crash_report.h"))
#: the C allocator's interposer, compiled into the counting host only
NATIVE_SOURCES = (Path(__file__).with_name("native_alloc.c"), Path(__file__).with_name("native_alloc.h"))
#: included by both block maps (host.c's and native_alloc.c's)
SHARED_HEADERS = (Path(__file__).with_name("size_table.h"),)
#: what the counting host exports from the executable, so that every
#: object (extensions loaded later included) binds these names to it
INTERPOSED = ("malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
              "aligned_alloc", "memalign", "valloc", "pvalloc") + (
    # native_alloc.c's dlsym hands out these for an explicit handle (x86-64 only)
    ("dlsym",) if platform.machine() in ("x86_64", "AMD64") else ())
PROBE_EXT_SOURCE = Path(__file__).with_name("probe_ext.c")
PROBE_EXT_MODULE = "_leak_harness_probe"
#: after the target's own flags: the host and the probe are kept free of
#: these (tests/test_host_standard.py builds them with -Werror on every target)
WARNING_FLAGS = ("-Wall", "-Wextra")
#: a ThreadSanitizer build of the plain host, for bench/tsan.py and its slow
#: test only, never for a measurement: it checks the host's own threads
#: (the parallel mode's shadow-map and crash-report state).  Not for the
#: counting host: TSan learns of heap blocks through its own malloc, which
#: native_alloc.c's malloc would bypass.
TSAN_FLAGS = ("-fsanitize=thread", "-g", "-O1")


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
    """The script's answer, asked once per process (per script version):
    every case of a run or sweep builds (finds) its host through here, and
    the pythonX.Y-config shell scripts took ~0.14 s a call, three calls a
    case (bench/startup.py: more than half of the harness's own time per case)."""
    try:
        info = script.stat()
    except OSError as exc:
        raise HostBuildError(f"cannot run {script}: {exc}") from None
    return list(_config_flags_of(str(script), args, (info.st_size, info.st_mtime_ns, info.st_ino)))


@functools.lru_cache(maxsize=None)
def _config_flags_of(script_path: str, args: tuple[str, ...], stamp: tuple[int, int, int]) -> tuple[str, ...]:
    """Cached by the script's stat `stamp`: a reinstalled target asks again.
    Failures raise and so are not cached."""
    script = Path(script_path)
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
    return tuple(shlex.split(proc.stdout))


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
    return cflags + ["-O2", *WARNING_FLAGS], ldflags + rpaths + ["-ldl"]


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _cache_error(path: Path, exc: OSError) -> HostBuildError:
    return HostBuildError(
        f"cannot use the build cache at {path} ({exc.strerror or exc}); point "
        "LEAK_HARNESS_CACHE at a writable directory")


def compile_atomically(argv: list[str], output: Path, what: str,
                       built_for: dict | None = None) -> None:
    """Run `argv -o TMP` and rename TMP to `output`: concurrent builders (sweep
    workers, xdist) never see a half-written binary, and race harmlessly.

    With `built_for`, a record of the binary's checksum and of what it was
    built for is written beside it (see `_trusted`)."""
    tmp = _tmp_name(output)
    try:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            # made now, so a cache directory that cannot be written is said
            # as such, not as the compiler's failure to write its output
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise _cache_error(output.parent, exc) from None
        try:
            proc = _run_compiler(argv + ["-o", tmp])
        except subprocess.TimeoutExpired:
            raise HostBuildError(f"compiling the {what} took over 300 s; killed") from None
        if proc.returncode != 0:
            raise CompileError(
                f"compiling the {what} failed ({argv[0]} exit {proc.returncode}):\n"
                f"$ {shlex.join(argv)}\n{proc.stderr.strip()[-3000:]}"
            )
        os.chmod(tmp, 0o755)
        if built_for is not None:
            record = {**built_for, "sha256": _file_sha256(Path(tmp))}
            _write_atomically(_record_path(output), json.dumps(record, sort_keys=True))
        _remove_slot(output)
        os.replace(tmp, output)
    except OSError as exc:
        raise _cache_error(output.parent, exc) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _run_compiler(argv: list[str]) -> subprocess.CompletedProcess:
    """The compiler in a session of its own: on SIGINT/SIGTERM (or its timeout)
    the whole driver tree (cc1, as, ld) is killed before the .tmp is removed,
    so no linker writes it again afterwards."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as exc:
        raise HostBuildError(f"cannot run the compiler {argv[0]}: {exc.strerror or exc}") from None
    try:
        out, err = proc.communicate(timeout=300)
    except BaseException:
        kill_group(proc)
        proc.wait()
        _wait_until_gone(proc.pid)
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _wait_until_gone(group: int, timeout_s: float = 10.0) -> None:
    """Until no live process of `group` is left: a killed linker still inside
    its open() would otherwise create the output again after it is removed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == group:
                alive = True
                break
        if not alive:
            return
        time.sleep(0.01)


def _record_path(binary: Path) -> Path:
    return binary.with_name(binary.name + ".json")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tmp_name(path: Path) -> str:
    """A name beside `path` for a file that becomes it, not yet created: the
    caller creates it inside the try whose finally removes it, so an
    interrupt (SIGINT/SIGTERM raise in the main thread) can land nowhere
    between the file's creation and its guard.  With mkstemp it could: CI
    once found a host's .tmp left by a SIGTERM sent the moment it appeared."""
    return f"{path}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def _write_atomically(path: Path, text: str) -> None:
    tmp = _tmp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove_slot(path: Path) -> None:
    """Clear what occupies a cache slot that is not a trusted binary (a directory too)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


#: binaries already checked in this process: path -> (size, mtime_ns, inode)
_verified: dict[Path, tuple[int, int, int]] = {}


def _trusted(binary: Path, built_for: dict) -> bool:
    """Whether the cached file is the very binary built for `built_for`.

    The file existing is not enough: a truncated, garbage, empty, not
    executable file, a directory, or another target's host copied into the
    slot would run (or crash) under this target's name.  The record beside
    it names the target and the binary's checksum; any mismatch rebuilds.
    """
    try:
        info = binary.stat()
        if not binary.is_file() or info.st_size == 0 or not os.access(binary, os.X_OK):
            return False
        stamp = (info.st_size, info.st_mtime_ns, info.st_ino)
        if _verified.get(binary) == stamp:
            return True
        record = json.loads(_record_path(binary).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or {k: record.get(k) for k in built_for} != built_for:
            return False
        if record.get("sha256") != _file_sha256(binary):
            return False
    except (OSError, ValueError):
        return False
    _verified[binary] = stamp
    return True


def build_host(target: TargetPython, native: bool = True,
               extra_flags: tuple[str, ...] = ()) -> Path:
    """Path of a host binary for `target`, compiling it on first use.

    `native`: with the C allocator counted (native_alloc.c interposes malloc
    & co. in the executable); False for the backends that replace malloc
    themselves (valgrind, memray), which must see the program's calls alone.
    `extra_flags`: compiler flags after ours, for checking the host itself
    (-Werror, TSAN_FLAGS); a host built with them has a cache slot of its own.
    A cached host needs no compiler: the key is what the binary depends on
    (interpreter, version, sources, flags), checked before looking for one.
    """
    if native and "-fsanitize=thread" in extra_flags:
        raise HostBuildError("a ThreadSanitizer host cannot count native blocks: build it with native=False")
    cflags, ldflags = embed_flags(target)
    cflags = cflags + list(extra_flags)
    sources = [HOST_SOURCE, CRASH_REPORT_SOURCES[0]]
    if native:
        cflags = cflags + ["-DLH_NATIVE_COUNTING=1"]
        # libgcc_s: _Unwind_Backtrace, to name the caller of a malloc made inside libc
        ldflags = ldflags + [f"-Wl,--export-dynamic-symbol={name}" for name in INTERPOSED] + ["-lgcc_s"]
        sources.append(NATIVE_SOURCES[0])
    texts = [p.read_bytes() for p in (HOST_SOURCE, *CRASH_REPORT_SOURCES, *NATIVE_SOURCES, *SHARED_HEADERS)]
    key = _digest(target.realpath, target.version, *texts, *cflags, *ldflags)
    kind = "native" if native else "plain"
    binary = cache_root() / "hosts" / f"host-{target.label}-{kind}-{key}"
    built_for = {"kind": f"host-{kind}", "key": key, "python": target.realpath, "version": target.label}
    with _slot_lock(binary):
        if not _trusted(binary, built_for):
            compiler = find_compiler()
            argv = shlex.split(compiler) + cflags + [str(p) for p in sources] + ldflags
            compile_atomically(argv, binary, f"host for Python {target.label}", built_for)
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
    built_for = {"kind": "probe", "key": key, "python": target.realpath, "version": target.label}
    with _slot_lock(library):
        if not _trusted(library, built_for):
            compiler = find_compiler()
            argv = (shlex.split(compiler) + cflags + ["-O2", *WARNING_FLAGS, "-shared", "-fPIC",
                                                      str(PROBE_EXT_SOURCE)])
            compile_atomically(argv, library, f"probe extension for Python {target.label}", built_for)
    return directory


_slot_locks: dict[Path, threading.Lock] = {}
_slot_guard = threading.Lock()


def _slot_lock(path: Path) -> threading.Lock:
    """One builder per cache slot in this process (sweep workers start together)."""
    with _slot_guard:
        return _slot_locks.setdefault(path, threading.Lock())
