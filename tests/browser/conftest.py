from tests.server.conftest import gateway_for, upstream  # noqa: F401  (shared fixtures)
