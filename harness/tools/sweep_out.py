"""`sweep --out FILE`: a JSON-lines file that no fault cuts, glues or loses.

- **Opened and probed before any work**: a directory, a path under a file, a
  read-only file system, a too-long name, a full disk or `/dev/full` is one
  line and exit 2 before a host runs, not a traceback after the first result.
- **Repaired on start**: a partial last line (a killed sweep, a full disk)
  is moved to a side file `FILE.partial-N` and reported; appending onto it
  would glue two results into one line that every reader rejects.
- **Each line is one `write()` under an exclusive lock**, so sweeps sharing
  the file never interleave, and a repair never cuts another sweep's line.
- **A failed write is undone** (the file is cut back to its last whole line)
  and the line is kept in memory: later results still reach the file once
  space returns, and what never could is counted for the summary.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path

from ..errors import HarnessError

#: less free space than this at the start is a full disk for a sweep whose
#: lines are a few kB each
MIN_FREE_BYTES = 1 << 20


class OutFileError(HarnessError):
    """--out cannot be written."""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


class ResultsOut:
    """An open, probed, repaired `--out` file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        self.unwritten: list[str] = []        # lines no write could store (yet)
        self.last_error: str | None = None
        self._fd = self._open()
        try:
            self._probe()
            self._repair()
        except BaseException:
            os.close(self._fd)
            raise

    # -- start ----------------------------------------------------------------
    def _open(self) -> int:
        where = f"--out {self.path}"
        try:
            if self.path.is_dir():
                raise OutFileError(f"{where} is a directory; give a file name")
        except OSError as exc:   # a too-long name, a loop of links, ...
            raise OutFileError(f"cannot write {where}: {_why(exc)}") from None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTDIR):
                raise OutFileError(f"{where}: a part of the path is a file, not a directory") from None
            if exc.errno == errno.ENXIO:   # a FIFO nobody reads
                raise OutFileError(f"{where}: nothing reads that pipe") from None
            try:  # a device or pipe opens write-only (it cannot be read back anyway)
                return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            except OSError:
                pass
            raise OutFileError(f"cannot write {where}: {_why(exc)}") from None

    def _probe(self) -> None:
        where = f"--out {self.path}"
        info = os.fstat(self._fd)
        self._regular = stat.S_ISREG(info.st_mode)
        if not self._regular:
            # a device or a pipe: a blank line (readers skip them) shows
            # whether it takes data at all (/dev/full does not)
            try:
                os.write(self._fd, b"\n")
            except OSError as exc:
                raise OutFileError(f"cannot write {where}: {_why(exc)}") from None
            return
        try:
            fs = os.fstatvfs(self._fd)
        except OSError:
            return
        if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
            raise OutFileError(f"cannot write {where}: no space left on its file system "
                               f"({fs.f_bavail * fs.f_frsize} bytes free)")

    def _repair(self) -> None:
        """Move a partial last line aside (or end a whole one) under the lock."""
        if not self._regular:
            return
        try:
            self._repair_locked()
        except OSError as exc:   # e.g. a write-only file: append without the check
            self.notes.append(f"{self.path}: could not check its last line ({_why(exc)})")

    def _repair_locked(self) -> None:
        with self._locked():
            size = os.fstat(self._fd).st_size
            if size == 0:
                return
            start = max(0, size - 1)
            if os.pread(self._fd, 1, start) == b"\n":
                return
            # find the start of the last line
            chunk, cut = 65536, 0
            position = size
            while position > 0:
                begin = max(0, position - chunk)
                data = os.pread(self._fd, position - begin, begin)
                newline = data.rfind(b"\n")
                if newline >= 0:
                    cut = begin + newline + 1
                    break
                position = begin
            tail = os.pread(self._fd, size - cut, cut)
            try:
                whole = isinstance(json.loads(tail), dict)
            except ValueError:
                whole = False
            if whole:   # complete but for its newline: end it, keep it
                self._write_all(b"\n")
                self.notes.append(f"{self.path}: its last line had no newline; ended it")
                return
            side = self._side_file()
            try:
                side.write_bytes(tail)
            except OSError as exc:
                raise OutFileError(f"--out {self.path} ends in a partial line ({len(tail)} bytes) "
                                   f"that cannot be moved aside to {side}: {_why(exc)}") from None
            try:
                os.ftruncate(self._fd, cut)
            except OSError as exc:   # appending now would glue onto the partial line
                raise OutFileError(f"--out {self.path} ends in a partial line that cannot be "
                                   f"cut off ({_why(exc)}); it was copied to {side}") from None
            self.notes.append(f"{self.path}: a partial last line ({len(tail)} bytes, an "
                              f"interrupted sweep or a full disk) was moved to {side}")

    def _side_file(self) -> Path:
        n = 1
        while True:
            side = self.path.with_name(f"{self.path.name}.partial-{n}")
            if not side.exists():
                return side
            n += 1

    # -- writing --------------------------------------------------------------
    def _locked(self):
        fd = self._fd

        class _Lock:
            def __enter__(self_inner):
                if self._regular:
                    fcntl.flock(fd, fcntl.LOCK_EX)

            def __exit__(self_inner, *exc):
                if self._regular:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        return _Lock()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            if written <= 0:   # a short write of nothing: treat as a full disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]

    def write_line(self, line: dict) -> bool:
        """Append one result line (and any kept back earlier); False when it is kept back."""
        self.unwritten.append(json.dumps(line, separators=(",", ":")) + "\n")
        return self.flush()

    def flush(self) -> bool:
        """Write the lines kept back; on failure cut the file back to a whole line."""
        if not self.unwritten:
            return True
        data = "".join(self.unwritten).encode("utf-8")
        with self._locked():
            before = os.fstat(self._fd).st_size if self._regular else None
            try:
                self._write_all(data)
            except OSError as exc:
                self.last_error = _why(exc)
                if before is not None:
                    try:
                        os.ftruncate(self._fd, before)
                    except OSError:
                        pass
                return False
        self.unwritten.clear()
        return True

    def close(self) -> None:
        try:
            self.flush()
        finally:
            os.close(self._fd)

    def problem(self) -> str | None:
        """One line for the summary when results could not all be written, else None."""
        if not self.unwritten:
            return None
        return (f"{len(self.unwritten)} result line(s) could not be written to {self.path} "
                f"({self.last_error}); every line in it is whole")
