"""Pure-Python host: isolated subinterpreter cycles without a C compiler.

Run by the *target* interpreter as a script (it cannot import the harness):
    python -S -P pyhost_driver.py CASE_FILE CYCLES OUT_FD TOKEN_FD
Writes the same JSON lines as host.c, each with the run's token, read from
TOKEN_FD (a pipe the harness filled) and closed before any interpreter runs
the case, so lines the case writes to OUT_FD are told apart and dropped. It only sees what the interpreter
itself counts (sys.getallocatedblocks, RSS, fds), so its blocks include the
main interpreter's; the control run through the same driver cancels that.
"""

import json
import os
import resource
import sys
import time

try:
    import _interpreters as interpreters  # 3.13+
except ImportError:
    import _xxsubinterpreters as interpreters  # 3.12


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def count_fds():
    return len(os.listdir("/proc/self/fd")) - 1


def create_isolated():
    try:
        return interpreters.create("isolated")  # 3.13: named config
    except TypeError:
        return interpreters.create(isolated=True)  # 3.12


def run_in(interp, source):
    """None on success, else (type name, formatted message)."""
    if hasattr(interpreters, "exec"):
        failure = interpreters.exec(interp, source)
        if failure is None:
            return None
        return (getattr(failure, "type", None) and failure.type.__name__ or "Exception",
                getattr(failure, "formatted", None) or str(failure))
    try:
        interpreters.run_string(interp, source)
    except Exception as exc:  # RunFailedError carries the sub's "Type: message"
        text = str(exc)
        type_name = text.split(":", 1)[0] if ":" in text else type(exc).__name__
        return type_name, text
    return None


# Appended to the case: the subinterpreter reports its interned-string
# count (see host.c's interned_strings) through a pipe, since 3.12's
# run_string returns nothing.
TRAILER = """
import os as _lh_os, sys as _lh_sys
_lh_os.write({fd}, b"%d\\n" % getattr(_lh_sys, "getunicodeinternedsize", lambda: -1)())
"""


def read_token(fd):
    chunks = []
    while chunk := os.read(fd, 64):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("ascii").strip()


def main():
    # no core file, as the C host's --no-core-dump: the harness reports a crash itself
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    case_file, cycles, fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    token = read_token(int(sys.argv[4])) if len(sys.argv) > 4 else ""
    with open(case_file) as f:
        source = f.read()
    interned_r, interned_w = os.pipe()
    source += TRAILER.format(fd=interned_w)
    interned = [-1]
    out = os.fdopen(fd, "w")
    start = time.monotonic()

    def sample(cycle):
        out.write(json.dumps({
            "token": token, "event": "sample", "cycle": cycle, "t_ms": (time.monotonic() - start) * 1e3,
            "mem_blocks": 0, "obj_blocks": sys.getallocatedblocks(),
            "rss": rss_bytes(), "fds": count_fds() - 2, "threads": None,
            **({"interned": interned[0]} if interned[0] >= 0 else {}),
            **({"refs": sys.gettotalrefcount()} if hasattr(sys, "gettotalrefcount") else {}),
        }) + "\n")
        out.flush()

    sample(0)
    for cycle in range(1, cycles + 1):
        interp = create_isolated()
        failure = run_in(interp, source)
        interpreters.destroy(interp)
        if not failure:
            interned[0] = int(os.read(interned_r, 64).split()[-1])
        if failure:
            out.write(json.dumps({"token": token, "event": "error", "cycle": cycle, "type": failure[0],
                                  "message": failure[1]}) + "\n")
            out.flush()
            return 3
        sample(cycle)
    out.write(json.dumps({"token": token, "event": "done", "t_ms": (time.monotonic() - start) * 1e3}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
