"""`bisect git`: find the commit that introduced a leak with `git bisect run`.

The driver checks the endpoints first (the --good commit must build and be
clean, the --bad one must build and leak: otherwise git would bisect
nonsense), then hands git a generated step script.  At each commit git
checks out, the step runs the build command (a failed build exits 125,
git's "cannot test this commit": skip), measures the case with the usual
engine (its own `pass` control, the same control-subtracted verdict) and
exits 0 for clean, 1 for leak, 125 for a case that cannot run there, 128
(git aborts) when the harness itself cannot work.  Every step appends one
JSON line to a log, from which the report takes the leak per cycle on both
sides of the first bad commit.

The repository is always left as it was found: `git bisect reset` runs in
a `finally`, after Ctrl-C (SIGINT) and SIGTERM too.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...cases.model import Case
from ...engine import Engine
from ...settings import RunSettings
from ...errors import HarnessError

SKIP, ABORT = 125, 128
HARNESS_PARENT = str(Path(__file__).resolve().parents[3])


class GitBisectError(HarnessError):
    """The repository or the revisions given cannot be bisected."""


@dataclass
class GitBisectOutcome:
    """The first bad commit and the measurements around it."""

    first_bad: str | None                  # full hash; None when skips left it ambiguous
    subject: str | None
    candidates: list[str]                  # when ambiguous: the commits it could be
    last_good: str | None                  # the parent side of the first bad commit
    steps: list[dict]                      # one per measured commit, in order
    good: dict                             # the --good endpoint's step
    bad: dict                              # the --bad endpoint's step
    wall_s: float = 0.0
    bisect_log: str = ""
    extra: dict = field(default_factory=dict)

    def step_for(self, commit: str | None) -> dict | None:
        for step in reversed(self.steps):
            if commit and step["commit"] == commit:
                return step
        return None


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise GitBisectError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def bisect_in_progress(repo: Path) -> bool:
    git_dir = Path(_git(repo, "rev-parse", "--absolute-git-dir").stdout.strip())
    return (git_dir / "BISECT_START").exists()


def _preflight(repo: Path, good: str, bad: str) -> tuple[str, str]:
    if not repo.is_dir():
        raise GitBisectError(f"--repo {repo} is not a directory")
    if _git(repo, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip() != "true":
        raise GitBisectError(f"--repo {repo} is not a git work tree")
    if bisect_in_progress(repo):
        raise GitBisectError(f"{repo} is already bisecting: finish it or run `git bisect reset` first")
    dirty = _git(repo, "status", "--porcelain", "--untracked-files=no").stdout.strip()
    if dirty:
        raise GitBisectError(f"{repo} has uncommitted changes to tracked files; commit or stash them first")
    hashes = []
    for option, rev in (("--good", good), ("--bad", bad)):
        proc = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if proc.returncode != 0:
            raise GitBisectError(f"{option} {rev}: no such commit in {repo}")
        hashes.append(proc.stdout.strip())
    if _git(repo, "merge-base", "--is-ancestor", hashes[0], hashes[1], check=False).returncode != 0:
        raise GitBisectError(f"--good {good} is not an ancestor of --bad {bad}")
    if hashes[0] == hashes[1]:
        raise GitBisectError("--good and --bad are the same commit")
    return hashes[0], hashes[1]


# -- the step: runs once per commit, in its own process ---------------------------
def step_config(repo: Path, build: str, case: Case, settings: RunSettings, log: Path) -> dict:
    return {"repo": str(repo), "build": build, "log": str(log),
            "case": {"name": case.name, "code": case.code, "module": case.module},
            "settings": asdict(settings)}


def run_step(config: dict) -> int:
    """Build, measure, log one JSON line; the exit status is git bisect run's verdict."""
    repo = Path(config["repo"])
    commit = _git(repo, "rev-parse", "HEAD").stdout.strip()
    step: dict = {"commit": commit, "subject": _git(repo, "log", "-1", "--format=%s").stdout.strip()}
    started = time.monotonic()
    build = subprocess.run(config["build"], shell=True, cwd=repo, capture_output=True, text=True)
    step["build_ok"] = build.returncode == 0
    if not step["build_ok"]:
        step.update(exit=SKIP, verdict="build-failed",
                    message=f"build exited {build.returncode}: {(build.stdout + build.stderr).strip()[-1500:]}")
    else:
        try:
            settings = RunSettings(**config["settings"])
            result = Engine().run(Case(**config["case"]), settings)
        except HarnessError as exc:
            step.update(exit=ABORT, verdict="harness-error", message=str(exc))
        else:
            code = {"leak": 1, "clean": 0}.get(result.verdict, SKIP)
            step.update(exit=code, verdict=result.verdict, excess=result.excess,
                        per_cycle=result.per_cycle, message=result.message)
    step["wall_s"] = round(time.monotonic() - started, 3)
    with open(config["log"], "a") as log:
        log.write(json.dumps(step) + "\n")
    return step["exit"]


_STEP_SCRIPT = """\
# generated by leak-harness bisect git: one bisect step (build, measure, verdict)
import json, sys
sys.path.insert(0, {parent!r})
from harness.tools.bisect.git import run_step
with open({config!r}) as f:
    sys.exit(run_step(json.load(f)))
"""


def _read_steps(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _checkout_and_step(repo: Path, rev: str, script: Path, log: Path) -> dict:
    _git(repo, "checkout", "-q", "--detach", rev)
    subprocess.run([sys.executable, str(script)], cwd=repo, capture_output=True, text=True)
    steps = _read_steps(log)
    if not steps or steps[-1]["commit"] != rev:
        raise GitBisectError(f"the bisect step did not report for {rev[:12]}")
    return steps[-1]


def git_bisect(repo: Path, good: str, bad: str, build: str, case: Case,
               settings: RunSettings) -> GitBisectOutcome:
    """Run the whole bisection; the repository's bisect state is reset whatever happens."""
    repo = repo.resolve()
    good_hash, bad_hash = _preflight(repo, good, bad)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="leak-harness-gitbisect-"))
    log, config_file, script = workdir / "steps.jsonl", workdir / "step.json", workdir / "step.py"
    config_file.write_text(json.dumps(step_config(repo, build, case, settings, log)))
    script.write_text(_STEP_SCRIPT.format(parent=HARNESS_PARENT, config=str(config_file)))
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    started_bisect = False
    try:
        _git(repo, "bisect", "start", bad_hash, good_hash, "--")
        started_bisect = True
        midpoint = _git(repo, "rev-parse", "HEAD").stdout.strip()
        endpoints = {}
        for name, rev in (("good", good_hash), ("bad", bad_hash)):
            endpoints[name] = _checkout_and_step(repo, rev, script, log)
        _check_endpoints(endpoints, good, bad)
        _git(repo, "checkout", "-q", "--detach", midpoint)
        run = subprocess.run(["git", "-C", str(repo), "bisect", "run", sys.executable, str(script)],
                             capture_output=True, text=True)
        bisect_log = _git(repo, "bisect", "log", check=False).stdout
        steps = _read_steps(log)
        aborted = [s for s in steps if s["exit"] == ABORT]
        if aborted:
            raise GitBisectError(f"bisect step at {aborted[-1]['commit'][:12]} could not measure: "
                                 f"{aborted[-1]['message']}")
        first_bad, candidates = _first_bad(repo, run.stdout + run.stderr)
        if first_bad is None and not candidates:
            raise GitBisectError("git bisect run ended without a first bad commit:\n"
                                 + (run.stdout + run.stderr).strip()[-1500:])
        return GitBisectOutcome(
            first_bad=first_bad,
            subject=_git(repo, "log", "-1", "--format=%s", first_bad).stdout.strip() if first_bad else None,
            candidates=candidates, last_good=_last_good(repo, first_bad, steps),
            steps=steps, good=endpoints["good"], bad=endpoints["bad"],
            wall_s=time.monotonic() - started, bisect_log=bisect_log,
        )
    finally:
        try:
            if started_bisect or bisect_in_progress(repo):
                _git(repo, "bisect", "reset", check=False)
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            shutil.rmtree(workdir, ignore_errors=True)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _check_endpoints(endpoints: dict, good: str, bad: str) -> None:
    for name, rev, wanted in (("good", good, 0), ("bad", bad, 1)):
        step = endpoints[name]
        if step["exit"] == wanted:
            continue
        what = {"build-failed": "does not build", "harness-error": "cannot be measured"}.get(
            step["verdict"], f"gives verdict {step['verdict']}")
        expected = "clean" if wanted == 0 else "leak"
        raise GitBisectError(f"--{name} {rev} {what} (a --{name} commit must build and be "
                             f"{expected}): {step.get('message', '')}".strip())


def _first_bad(repo: Path, output: str) -> tuple[str | None, list[str]]:
    """(first bad hash, []) or (None, candidates) when skipped commits leave it open."""
    for line in output.splitlines():
        if line.endswith("is the first bad commit"):
            return line.split()[0], []
    if "only 'skip'ped commits left" in output:
        hashes = [line.strip() for line in output.splitlines()
                  if len(line.strip()) == 40 and all(c in "0123456789abcdef" for c in line.strip())]
        return None, hashes
    return None, []


def _last_good(repo: Path, first_bad: str | None, steps: list[dict]) -> str | None:
    """The nearest ancestor of the first bad commit that was measured clean."""
    if not first_bad:
        return None
    clean = {s["commit"] for s in steps if s["exit"] == 0}
    ancestors = _git(repo, "rev-list", f"{first_bad}^").stdout.split()
    return next((c for c in ancestors if c in clean), None)
