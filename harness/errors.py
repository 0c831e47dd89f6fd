"""Errors the user can cause: each becomes one clear line and exit status 2."""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base for every error that is the environment's or the input's fault, not a bug."""

    exit_code = 2


class TargetPythonError(HarnessError):
    """The target interpreter cannot be run or inspected."""


class HostBuildError(HarnessError):
    """The C host cannot be compiled against the target (no compiler, no --embed, ...)."""


class CompileError(HostBuildError):
    """A compiler was found and ran, and rejected the source: a bug to fix, not a tool to install."""


class ModeUnavailableError(HarnessError):
    """The mode needs something the target does not have (e.g. own-GIL needs 3.12+)."""


class CaseError(HarnessError):
    """A case file or case argument is invalid."""


def read_input_text(path: Path, what: str, error: type[HarnessError]) -> str:
    """The UTF-8 text of a file the user named (`what`: "case file",
    "results file"), or `error` in one line: missing, unreadable, not text."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {path}: {exc}") from None
