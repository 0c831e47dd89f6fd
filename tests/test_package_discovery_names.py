"""A distribution's files that no `import` statement can name do not end a sweep.

numpy 2.x installs numpy/typing/tests/data/pass/*.py (type-checking data):
`sweep --package numpy` listed `numpy.typing.tests.data.pass.arithmetic` as a
module, the case builder refused it ('... is not a module name') and the
whole sweep ended with exit 2 before measuring anything.  The discovery now
leaves such files out, each named in `skipped` with the keyword.

The distribution here is a hand-made dist-info in a fresh venv of a real
target (no pip, no index): what importlib.metadata reads is all that counts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.cases.packages import package_import_cases
from harness.host.target import target_python

FILES = {
    "kwpkg/__init__.py": "",
    "kwpkg/core.py": "",
    "kwpkg/tests/data/pass/arithmetic.py": "",
    "kwpkg/tests/data/fail/lambda.py": "",
}


def test_files_under_a_keyword_directory_are_skipped_not_fatal(target_for, tmp_path: Path):
    base = target_for("3.12").executable
    venv = tmp_path / "v"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name, text in FILES.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    info = site / "kwpkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kwpkg\nVersion: 0.1\n")
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in FILES)
                                 + "kwpkg-0.1.dist-info/METADATA,,\nkwpkg-0.1.dist-info/RECORD,,\n")

    cases, skipped = package_import_cases(target_python(str(python)), distributions=["kwpkg"])
    assert sorted(c.module for c in cases) == ["kwpkg", "kwpkg.core"]
    assert skipped["kwpkg.tests.data.pass.arithmetic"] == \
        "not importable by name: 'pass' is a Python keyword"
    assert skipped["kwpkg.tests.data.fail.lambda"] == \
        "not importable by name: 'lambda' is a Python keyword"
