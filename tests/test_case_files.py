"""Case files: a valid file becomes a Case; every invalid one is one line naming file and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cases.catalog import CaseFile, load_case_file, load_catalog
from harness.cli import main
from harness.errors import CaseError
from harness.host.target import target_python

FULL = '''
name = "demo-case"
module = "json"
description = "a demo"
tags = ["json", "demo"]
modes = ["finalize", "legacy-subinterpreter"]
cycles = 12
setup = "import json"
body = """
json.dumps([1, 2])
"""

[requires]
python = ">=3.10, <4"
packages = ["json"]
'''


def write(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_full_case_file_becomes_a_case(tmp_path):
    loaded = load_case_file(write(tmp_path, FULL))
    case = loaded.case
    assert (case.name, case.module, case.setup) == ("demo-case", "json", "import json")
    assert case.modes == ("finalize", "legacy-subinterpreter") and case.tags == ("json", "demo")
    assert case.cycles == 12 and case.source.endswith("case.toml")
    assert case.source_code == "import json\njson.dumps([1, 2])\n\n"
    assert loaded.description == "a demo"
    assert loaded.requires.problem(target_python()) is None


def test_name_defaults_to_file_stem_and_modes_to_the_sweeps(tmp_path):
    loaded = load_case_file(write(tmp_path, 'module = "re"\nbody = "import re"\n', "re-min.toml"))
    assert loaded.name == "re-min"
    assert loaded.modes_for() == ("finalize", "subinterpreter")
    assert loaded.modes_for(("legacy-subinterpreter",)) == ("legacy-subinterpreter",)


@pytest.mark.parametrize("text, field, words", [
    ('module = "json"\n', "body", "missing"),
    ('body = "pass"\n', "module", "missing"),
    ('module = "json"\nbody = "pass"\nbdoy = "x"\n', "bdoy", "unknown field"),
    ('module = "json"\nbody = ""\n', "body", "empty"),
    ('module = "json"\nbody = "def f(:"\n', "body", "not valid Python"),
    ('module = "json"\nbody = "pass"\nsetup = 3\n', "setup", "must be a string"),
    ('module = "json"\nbody = "pass"\nmodes = "finalize"\n', "modes", "must be a list"),
    ('module = "json"\nbody = "pass"\nmodes = ["final"]\n', "modes", "unknown mode 'final'"),
    ('module = "json"\nbody = "pass"\ntags = [1]\n', "tags", "non-empty strings"),
    ('module = "json"\nbody = "pass"\ncycles = 2\n', "cycles", "at least 4"),
    ('module = "json"\nbody = "pass"\ncycles = true\n', "cycles", "an integer"),
    ('module = "no such"\nbody = "pass"\n', "module", "not a module name"),
    ('name = "a b"\nmodule = "json"\nbody = "pass"\n', "name", "letters, digits"),
    ('module = "json"\nbody = "pass"\n[requires]\npython = "3.12+"\n', "requires.python",
     "not a version specifier"),
    ('module = "json"\nbody = "pass"\n[requires]\npackages = "numpy"\n', "requires.packages",
     "must be a list"),
    ('module = "json"\nbody = "pass"\n[requires]\nos = "linux"\n', "requires.os", "unknown field"),
    ('module = "json"\nbody = "pass"\nrequires = "x"\n', "requires", "must be a table"),
])
def test_invalid_field_is_named_with_the_file(tmp_path, text, field, words):
    path = write(tmp_path, text, "bad-case.toml")
    with pytest.raises(CaseError) as info:
        load_case_file(path)
    message = str(info.value)
    assert message.startswith(str(path)) and f"'{field}'" in message and words in message
    assert "\n" not in message


def test_invalid_toml_names_file_and_line(tmp_path):
    path = write(tmp_path, 'module = "json"\nbody = \n', "broken.toml")
    with pytest.raises(CaseError, match=r"broken\.toml: not valid TOML: .*line 2"):
        load_case_file(path)


def test_duplicate_names_in_a_directory_are_an_error(tmp_path):
    write(tmp_path, 'name = "same"\nmodule = "json"\nbody = "pass"\n', "a.toml")
    write(tmp_path, 'name = "same"\nmodule = "re"\nbody = "pass"\n', "b.toml")
    with pytest.raises(CaseError, match=r"b\.toml: field 'name': 'same' is already used by .*a\.toml"):
        load_catalog(tmp_path)


def test_python_range_is_judged_against_the_target(tmp_path):
    running = "%d.%d" % sys.version_info[:2]
    target = target_python()

    def problem(spec: str) -> str | None:
        text = f'module = "json"\nbody = "pass"\n[requires]\npython = "{spec}"\n'
        return load_case_file(write(tmp_path, text)).requires.problem(target)

    assert problem(f">={running}") is None and problem(f"=={running}") is None
    assert problem(f"<{running}") == f"needs Python <{running}; {target.executable} is {target.version}"
    assert problem(f"!={running}") is not None and problem(">=3.10, <3.10") is not None


def test_packages_must_be_importable_by_the_target(tmp_path):
    text = 'module = "json"\nbody = "pass"\n[requires]\npackages = ["json", "no_such_pkg_zz"]\n'
    loaded: CaseFile = load_case_file(write(tmp_path, text))
    problem = loaded.requires.problem(target_python())
    assert problem is not None and problem.startswith("needs no_such_pkg_zz, not importable by")
    assert "json" not in problem.split(",")[0]


def test_run_cli_rejects_a_bad_case_file_with_one_line(tmp_path, capsys):
    path = write(tmp_path, 'module = "json"\nbody = "pass"\nmodes = ["nope"]\n', "bad.toml")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}: field 'modes': unknown mode 'nope'" in err


def test_run_cli_refuses_a_case_whose_requirement_is_not_met(tmp_path, capsys):
    path = write(tmp_path, 'module = "json"\nbody = "pass"\n[requires]\npython = "<3.5"\n', "old.toml")
    assert main(["run", str(path)]) == 2
    assert "cannot run here: needs Python <3.5" in capsys.readouterr().err


def test_run_cli_refuses_a_mode_the_case_does_not_list(capsys):
    assert main(["run", "signal-handler", "--mode", "legacy-subinterpreter"]) == 2
    assert "runs in finalize only" in capsys.readouterr().err


def test_run_cli_unknown_case_name(capsys):
    assert main(["run", "no-such-case"]) == 2
    assert "is neither a .py file, a .toml case file, a case name" in capsys.readouterr().err


def test_run_honours_the_case_files_cycles_unless_given(tmp_path):
    """`cycles` in a case file is the default for `run`; --cycles on the command line wins."""
    case = tmp_path / "leak_cycles.toml"
    case.write_text('name = "cycles-probe"\nmodule = "json"\nbody = "import json"\ncycles = 6\n')
    repo = Path(__file__).resolve().parent.parent

    def cycles_of(*extra: str) -> int:
        proc = subprocess.run([sys.executable, "-m", "harness", "run", str(case), "--warmup", "1",
                               "--json", *extra], capture_output=True, text=True, cwd=repo,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert len(result["samples"]) == 1 + 1 + result["cycles"]  # cycle 0, warm-up, measured
        # `cycles` is what ran; adaptive cycles may stop a clean case before the most asked for
        assert result["cycles"] <= result["cycle_stop"]["max_cycles"]
        return result["cycle_stop"]["max_cycles"]

    assert cycles_of() == 6
    assert cycles_of("--cycles", "4") == 4
