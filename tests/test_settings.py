"""RunSettings refuses what cannot be measured, with one clear line each."""

import pytest

from harness.settings import RunSettings
from harness.errors import HarnessError


@pytest.mark.parametrize("changes, message", [
    ({"cycles": 3}, "--cycles must be at least 4"),
    ({"warmup": -1}, "--warmup must be >= 0"),
    ({"backend": "nope"}, "backend 'nope' is not available"),
    ({"host": "rust"}, "--host must be auto, c or python"),
    ({"threads": 0}, "--threads must be between 1"),
])
def test_invalid_settings_are_refused(changes, message):
    with pytest.raises(HarnessError, match=message):
        RunSettings(**changes)


def test_settings_are_hashable_with_lists_given():
    settings = RunSettings(pythonpath=["/a", "/b"], xoptions=["dev"])
    assert settings.pythonpath == ("/a", "/b") and hash(settings) == hash(RunSettings(
        pythonpath=("/a", "/b"), xoptions=("dev",)))
