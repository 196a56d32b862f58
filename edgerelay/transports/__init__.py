"""Fetch implementations for CPython (the Worker has its own, over ``js.fetch``).

Each module imports its HTTP client at import time; import only the one you use.
"""
