"""Edgerelay's core: sans-IO, standard library only. Adapters give it a ``Request`` and a
``Fetch``; it gives back a ``Response`` (bytes, a stream, or the upstream body to pass on)."""

from .config import Config, ConfigError, ProviderConfig, load_config
from .errors import GatewayError
from .fetch import Fetch, FetchError, FetchRequest, FetchResponse
from .gateway import Gateway, error_response
from .http import Request, Response
from .ids import new_id
from .observer import StreamEnd, StreamHook, StreamObserver
from .responses import config_error
from .sse import SSEEvent, SSEParser

__all__ = [
    "Config",
    "ConfigError",
    "Fetch",
    "FetchError",
    "FetchRequest",
    "FetchResponse",
    "Gateway",
    "GatewayError",
    "ProviderConfig",
    "Request",
    "Response",
    "SSEEvent",
    "SSEParser",
    "StreamEnd",
    "StreamHook",
    "StreamObserver",
    "config_error",
    "error_response",
    "load_config",
    "new_id",
]
