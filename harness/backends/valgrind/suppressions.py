"""valgrind suppression files: which ones apply, writing new ones, what each matched.

Why suppressions at all: CPython leaks on its own at every finalization
(3.12.1: ~1,500 blocks a cycle), and every one of those loss records would
be printed by each per-cycle leak check — megabytes of XML a cycle, and
noise around what the case adds.  A version-specific file generated from
the `pass` control (`leak-harness suppressions generate`) removes exactly
what the interpreter leaks by itself.  Its entries carry the whole stack
(up to --num-callers frames, no `...` wildcards), so an allocation made
from an extension's code never matches one: its stack has the extension's
frames where the control's had CPython's.

Files are chosen by target version: `base.supp` (one-time allocations of
the loader and of CPython start-up, written by hand from observed runs),
then `cpython-X.Y[-debug].supp` from the shipped `harness/data/suppressions/` directory
and from the user's cache (where `generate` writes by default), then any
`--suppressions FILE`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ...data import suppressions_dir
from ...errors import HarnessError
from ...host.build import cache_root
from ...host.target import TargetPython, version_label

SHIPPED_DIR = suppressions_dir()
BASE_FILE = "base.supp"
#: Name prefix of every entry `generate` writes; the rest is a stack digest.
GENERATED_PREFIX = "lh-cpython"
LEAK_KINDS_SUPPRESSED = "definite,indirect,possible"
_NAME_LINE = re.compile(r"^\s*\{\s*$")


class SuppressionFileError(HarnessError):
    """A suppression file given by the user is missing or unreadable."""


@dataclass(frozen=True)
class Suppression:
    """One entry: memcheck kind, frames ("fun:X"/"obj:Y"), optional leak kinds."""

    kind: str                       # "Memcheck:Leak", "Memcheck:Addr8", ...
    frames: tuple[str, ...]
    leak_kinds: str | None = None   # match-leak-kinds, for Memcheck:Leak
    aux: str | None = None          # second line some kinds need (e.g. Param's syscall)

    def digest(self) -> str:
        h = hashlib.sha256("\n".join((self.kind, self.aux or "", *self.frames)).encode())
        return h.hexdigest()[:12]

    def render(self, name: str) -> str:
        lines = ["{", f"   {name}", f"   {self.kind}"]
        if self.aux:
            lines.append(f"   {self.aux}")
        if self.leak_kinds:
            lines.append(f"   match-leak-kinds: {self.leak_kinds}")
        lines += [f"   {frame}" for frame in self.frames]
        lines.append("}")
        return "\n".join(lines)


def user_dir() -> Path:
    return cache_root() / "suppressions"


def version_file_name(target: TargetPython) -> str:
    return f"cpython-{version_label(target.short_version, target.debug)}.supp"


def files_for(target: TargetPython, extra: Iterable[str] = (), *, include_version: bool = True) -> list[Path]:
    """The suppression files a run on `target` uses, in order; extra ones must exist."""
    chosen = []
    base = SHIPPED_DIR / BASE_FILE
    if base.is_file():
        chosen.append(base)
    if include_version:
        for directory in (SHIPPED_DIR, user_dir()):
            candidate = directory / version_file_name(target)
            if candidate.is_file():
                chosen.append(candidate)
    for name in extra:
        path = Path(name).expanduser()
        if not path.is_file():
            raise SuppressionFileError(f"suppression file {name} does not exist")
        try:
            parse_names(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise SuppressionFileError(f"cannot read suppression file {name}: {exc}") from None
        chosen.append(path.resolve())
    return chosen


def parse_names(path: Path) -> list[str]:
    """Entry names of a .supp file (the line after each opening brace)."""
    names = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if _NAME_LINE.match(line) and i + 1 < len(lines):
            names.append(lines[i + 1].strip())
    return names


def matched_per_file(counts: dict[str, int], files: Iterable[Path]) -> list[dict]:
    """How many times (valgrind's use count, summed over the per-cycle leak
    checks) each file's entries matched: [{"file", "entries", "matched"}]."""
    out = []
    for path in files:
        names = set(parse_names(path))
        out.append({"file": str(path), "entries": len(names),
                    "matched": sum(n for name, n in counts.items() if name in names)})
    return out


def render_file(entries: Iterable[Suppression], header: str, prefix: str) -> str:
    """A whole .supp file: a comment header, then entries sorted by name."""
    unique = {e.digest(): e for e in entries}
    comment = "\n".join(f"# {line}" if line else "#" for line in header.splitlines())
    body = "\n".join(unique[d].render(f"{prefix}-{d}") for d in sorted(unique))
    return f"{comment}\n\n{body}\n" if body else f"{comment}\n"
