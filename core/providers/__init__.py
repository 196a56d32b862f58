"""Provider modules, one per kind, each implementing the contract in ``base.py``: mock (an
in-process echo upstream), openai (OpenAI-compatible upstreams, relayed byte for byte),
anthropic and gemini (translated). ``core.registry`` declares each kind and imports its module
on first use."""
