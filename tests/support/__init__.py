"""Test helpers shared by the CPython and Pyodide suites (standard library only)."""
