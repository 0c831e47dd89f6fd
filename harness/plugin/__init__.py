"""The pytest front end's parts: tests run in interpreter cycles, case-file items.

harness/pytest_plugin.py (the pytest11 entry point) registers options, fixtures and
hooks and delegates here; nothing here measures: it builds cases and reads results.
"""
