"""leak-harness: does a module leave memory behind when an interpreter ends?"""

__version__ = "0.1.0"

#: Version of the `run --json` object and of each `sweep` JSON line.
SCHEMA_VERSION = 1
