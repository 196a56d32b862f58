import pytest

from tests.support.loopback import FakeUpstream, GatewayServer


@pytest.fixture
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def gateway_for():
    """``gateway_for(env) -> GatewayServer`` started for this test."""
    started = []

    def start(env, http_client="aiohttp", **options):
        server = GatewayServer(env, http_client, **options).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)
