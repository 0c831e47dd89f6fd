"""Processes a host leaves behind, and how the harness ends a host's process group.

Hosts run in sessions of their own, so everything a case starts can be
found (/proc, no psutil) and killed with the host.  A child still alive at a
cycle's end is the case's bug: it is named in the result and killed.
"""

from __future__ import annotations

import os
import signal
import subprocess


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ").strip().decode("utf-8", "replace")
    except OSError:
        command = ""
    return f"pid {pid}" + (f" ({command[:80]})" if command else "")


def kill_strays(proc: subprocess.Popen, reported_pids: list[int]) -> list[str]:
    """The host reported children alive at a cycle's end: stop the host (so
    it cannot reap them and free their pids), then kill them and it.

    Only processes that really are the host's (its children, or of its
    session) count: the case could name any pid in a forged event.  Returns
    what was killed, described; empty (and the host resumed) when none is."""
    try:
        os.kill(proc.pid, signal.SIGSTOP)
    except ProcessLookupError:
        pass
    pids = [pid for pid in dict.fromkeys(reported_pids)
            if proc.pid in (_parent_and_session(pid) or ())]
    if not pids:
        try:
            os.kill(proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        return []
    described = _kill_described(pids)
    kill_group(proc)
    return described


def _parent_and_session(pid: int) -> tuple[int, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


def _session_members(session: int) -> list[int]:
    """Live processes of a session (the host is its leader): /proc, no psutil."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == session:
            members.append(int(entry))
    return members


def kill_session(session: int) -> list[str]:
    """Kill what is left of the host's session; describe what was alive."""
    return _kill_described([pid for pid in _session_members(session) if pid != session])


def _kill_described(pids: list[int]) -> list[str]:
    """SIGKILL each pid; what each was, described before it died."""
    described = [_describe(pid) for pid in pids]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return described
