"""Read memcheck's XML output (protocol 4) into plain dataclasses.

Why a parser of our own: the file is the only machine-readable channel
memcheck has, and what we need from it is small — the loss records of each
leak check, the errors, and the suppression use counts.

Three things about the file shape the code:

- The host asks for a leak check after every cycle
  (`VALGRIND_DO_ADDED_LEAK_CHECK`).  Each check prints only the loss records
  that grew since the previous one, with text such as
  ``45 (+45) bytes in 1 (+1) blocks are definitely lost in loss record 11 of
  353``; `leakedbytes`/`leakedblocks` carry the record's *total*.  The
  checks are not delimited in the XML: a new one starts where the record
  numbers restart (or a record repeats, or a ``leak-harness cycle N``
  client message marks it).  The check valgrind runs at exit prints every
  record without the ``(+N)`` part.
- A run killed at `--timeout` leaves a truncated file: everything before the
  cut is kept and `complete` is False.
- memcheck writes it, we parse it: `xml.etree` is adequate (no DTD, no
  entities from elsewhere).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

LEAK_KINDS = {
    "Leak_DefinitelyLost": "definite",
    "Leak_IndirectlyLost": "indirect",
    "Leak_PossiblyLost": "possible",
    "Leak_StillReachable": "reachable",
}
_RECORD_NO = re.compile(r"loss record ([\d,]+) of ([\d,]+)")
_ADDED = re.compile(r"^\s*[\d,]+ \(([+-][\d,]+)\)")
_CYCLE_MARK = re.compile(r"leak-harness cycle (\d+)")
_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Frame:
    """One stack frame as memcheck symbolized it (fields absent without debug info)."""

    ip: str
    obj: str | None = None
    fn: str | None = None
    dir: str | None = None
    file: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        """`file:line`, or the object's name when there is no line info."""
        if self.file:
            return f"{self.file}:{self.line}" if self.line is not None else self.file
        return Path(self.obj).name if self.obj else self.ip

    def key(self) -> tuple:
        """Identity across processes: symbols, not addresses (which may move)."""
        if self.fn:
            return (self.fn, self.file, self.line)
        return (Path(self.obj).name if self.obj else None, self.ip)


@dataclass(frozen=True)
class LossRecord:
    """One loss record of one leak check."""

    kind: str                 # definite | indirect | possible | reachable
    total_bytes: int
    total_blocks: int
    added_bytes: int | None   # None in a full (exit) check
    record_no: int
    record_count: int
    stack: tuple[Frame, ...]
    text: str = ""

    def key(self) -> tuple:
        return (self.kind, tuple(f.key() for f in self.stack))


@dataclass
class LeakCheck:
    """The loss records one leak check printed, in order."""

    records: list[LossRecord] = field(default_factory=list)
    full: bool = False            # the check at exit (all records, no "(+N)")
    marked_cycle: int | None = None  # from a "leak-harness cycle N" client message


@dataclass(frozen=True)
class MemcheckError:
    """An error other than a leak: invalid read/write/free, uninitialised use, ..."""

    unique: str
    kind: str
    what: str
    stack: tuple[Frame, ...]
    aux: tuple[tuple[str, tuple[Frame, ...]], ...] = ()   # ("Address ... free'd", stack), ...
    count: int = 1
    suppression_frames: tuple[str, ...] = ()              # "fun:X" / "obj:Y" when generated
    suppression_kind: str = ""                            # e.g. "Memcheck:Addr8"

    def key(self) -> tuple:
        return (self.kind, tuple(f.key() for f in self.stack))


@dataclass
class MemcheckReport:
    """Everything read from one XML file."""

    checks: list[LeakCheck] = field(default_factory=list)
    errors: list[MemcheckError] = field(default_factory=list)
    suppression_counts: dict[str, int] = field(default_factory=dict)
    complete: bool = False        # the closing </valgrindoutput> was read
    pid: int | None = None
    #: "fun:X"/"obj:Y" lines valgrind generated per loss record (--gen-suppressions)
    leak_suppression_frames: dict[tuple, tuple[str, ...]] = field(default_factory=dict)

    @property
    def cycle_checks(self) -> list[LeakCheck]:
        return [c for c in self.checks if not c.full]

    @property
    def final_check(self) -> LeakCheck | None:
        fulls = [c for c in self.checks if c.full]
        return fulls[-1] if fulls else None


def _int(text: str | None) -> int:
    return int((text or "0").replace(",", "").strip() or 0)


def _frames(stack: ET.Element | None) -> tuple[Frame, ...]:
    if stack is None:
        return ()
    frames = []
    for f in stack.findall("frame"):
        line = f.findtext("line")
        frames.append(Frame(
            ip=f.findtext("ip") or "?", obj=f.findtext("obj"), fn=f.findtext("fn"),
            dir=f.findtext("dir"), file=f.findtext("file"),
            line=int(line) if line and line.isdigit() else None,
        ))
    return tuple(frames)


def _suppression_frames(error: ET.Element) -> tuple[str, ...]:
    supp = error.find("suppression")
    if supp is None:
        return ()
    lines = []
    for sframe in supp.findall("sframe"):
        fun, obj = sframe.findtext("fun"), sframe.findtext("obj")
        lines.append(f"fun:{fun}" if fun is not None else f"obj:{obj}")
    return tuple(lines)


class _Builder:
    """Turns top-level elements into the report as they are completed."""

    def __init__(self) -> None:
        self.report = MemcheckReport()
        self._current: LeakCheck | None = None
        self._seen: set[tuple] = set()
        self._pending_mark: int | None = None

    def _check_for(self, record: LossRecord) -> LeakCheck:
        full = record.added_bytes is None
        current = self._current
        last_no = current.records[-1].record_no if current and current.records else 0
        new = (
            current is None or current.full != full or self._pending_mark is not None
            or record.record_no <= last_no or record.key() in self._seen
        )
        if new:
            current = LeakCheck(full=full, marked_cycle=self._pending_mark)
            self._pending_mark = None
            self._seen = set()
            self.report.checks.append(current)
            self._current = current
        return current

    def error(self, el: ET.Element) -> None:
        kind = el.findtext("kind") or "?"
        stacks = el.findall("stack")
        if kind in LEAK_KINDS:
            xwhat = el.find("xwhat")
            text = xwhat.findtext("text") if xwhat is not None else ""
            numbers = _RECORD_NO.search(text or "")
            added = _ADDED.match(text or "")
            record = LossRecord(
                kind=LEAK_KINDS[kind],
                total_bytes=_int(xwhat.findtext("leakedbytes") if xwhat is not None else None),
                total_blocks=_int(xwhat.findtext("leakedblocks") if xwhat is not None else None),
                added_bytes=_int(added.group(1).lstrip("+")) if added else None,
                record_no=_int(numbers.group(1)) if numbers else 0,
                record_count=_int(numbers.group(2)) if numbers else 0,
                stack=_frames(stacks[0] if stacks else None),
                text=text or "",
            )
            self._check_for(record).records.append(record)
            self._seen.add(record.key())
            frames = _suppression_frames(el)
            if frames:
                self.report.leak_suppression_frames[record.key()] = frames
            return
        what = el.findtext("what") or (el.find("xwhat").findtext("text")
                                       if el.find("xwhat") is not None else "") or kind
        # children in order: what, stack, then (auxwhat, stack) pairs
        aux: list[tuple[str, tuple[Frame, ...]]] = []
        label = None
        seen_main = False
        for child in el:
            if child.tag == "stack":
                if not seen_main:
                    seen_main = True
                else:
                    aux.append((label or "", _frames(child)))
                    label = None
            elif child.tag == "auxwhat":
                if label is not None:
                    aux.append((label, ()))
                label = child.text or ""
        if label is not None:
            aux.append((label, ()))
        self.report.errors.append(MemcheckError(
            unique=el.findtext("unique") or "", kind=kind, what=what,
            stack=_frames(stacks[0] if stacks else None), aux=tuple(aux),
            suppression_frames=_suppression_frames(el),
            suppression_kind=el.findtext("suppression/skind") or "",
        ))

    def errorcounts(self, el: ET.Element) -> None:
        counts = {p.findtext("unique"): _int(p.findtext("count")) for p in el.findall("pair")}
        self.report.errors = [
            MemcheckError(e.unique, e.kind, e.what, e.stack, e.aux, counts.get(e.unique, e.count),
                          e.suppression_frames, e.suppression_kind)
            for e in self.report.errors
        ]

    def suppcounts(self, el: ET.Element) -> None:
        for pair in el.findall("pair"):
            name = pair.findtext("name") or ""
            self.report.suppression_counts[name] = _int(pair.findtext("count"))

    def clientmsg(self, el: ET.Element) -> None:
        mark = _CYCLE_MARK.search(el.findtext("text") or "")
        if mark:
            self._pending_mark = int(mark.group(1))


def parse_stream(chunks) -> MemcheckReport:
    """Parse XML given as an iterable of byte chunks; stops quietly at a truncation."""
    builder = _Builder()
    parser = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    root: ET.Element | None = None
    handlers = {"error": builder.error, "errorcounts": builder.errorcounts,
                "suppcounts": builder.suppcounts, "clientmsg": builder.clientmsg}

    def drain() -> None:
        nonlocal depth, root
        for event, el in parser.read_events():
            if event == "start":
                depth += 1
                if depth == 1:
                    root = el
                continue
            depth -= 1
            if depth == 1:        # a child of <valgrindoutput> is complete
                handler = handlers.get(el.tag)
                if handler:
                    handler(el)
                elif el.tag == "pid":
                    builder.report.pid = _int(el.text)
                if root is not None:
                    root.remove(el)   # keep memory flat on big files
            elif depth == 0 and el.tag == "valgrindoutput":
                builder.report.complete = True

    try:
        for chunk in chunks:
            parser.feed(chunk)
            drain()
        parser.close()
        drain()
    except ET.ParseError:
        drain_safely(drain)
    return builder.report


def drain_safely(drain) -> None:
    try:
        drain()
    except ET.ParseError:
        pass


def parse_file(path: str | Path) -> MemcheckReport:
    """Parse a memcheck XML file; a missing or empty file gives an empty, incomplete report."""
    path = Path(path)
    if not path.exists():
        return MemcheckReport()

    def chunks():
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(_CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk

    return parse_stream(chunks())


def totals(records: dict[tuple, LossRecord], kind: str) -> tuple[int, int]:
    """(bytes, blocks) summed over the records of one kind."""
    chosen = [r for r in records.values() if r.kind == kind]
    return sum(r.total_bytes for r in chosen), sum(r.total_blocks for r in chosen)
