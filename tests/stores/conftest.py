from tests.support.redis_server import redis_url  # noqa: F401  (a fixture)
