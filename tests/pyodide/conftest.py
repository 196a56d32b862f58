# These tests need Pyodide (`import js`) and are driven by async_runner.py via
# run.mjs, not by pytest: keep a CPython `pytest tests/` from collecting them.
collect_ignore_glob = ["test_*.py"]
