"""Files shipped inside the package: valgrind suppressions, the known-leaks
list, the case catalog, the JUnit schema.

They live in the package (not beside it) so a wheel carries them; every
reader finds them here through importlib.resources, the same way from a
checkout, an editable install and an installed wheel.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import HarnessError


def data_path(*parts: str) -> Path:
    """A shipped file or directory as a real path (valgrind and tomllib want files).

    Wheels install unpacked, so the resource is on disk; a zipped install
    (zipapp, zipimport) is refused with the reason rather than half-working."""
    resource = files(__name__).joinpath(*parts)
    if not isinstance(resource, Path):
        raise HarnessError(f"leak-harness data {'/'.join(parts)} is inside an archive "
                           f"({resource}); install leak-harness unpacked (pip install)")
    return resource


def suppressions_dir() -> Path:
    return data_path("suppressions")


def known_leaks_file() -> Path:
    return data_path("known-leaks.toml")


def catalog_dir() -> Path:
    return data_path("cases")


def junit_schema() -> Path:
    return data_path("junit.xsd")
