"""Retry, fallback-chain and timeout settings: defaults, environment, per alias, bad values."""

import pytest

from edgerelay.core.chains import Timeouts
from edgerelay.core.config import ConfigError, load_config
from edgerelay.core.retry import RetryPolicy


def test_defaults():
    config = load_config({})
    assert config.retry == RetryPolicy(retries=2, base=0.5, max_backoff=8.0, max_wait=20.0)
    assert config.timeouts == Timeouts(connect=10.0, first_byte=600.0, idle=600.0, total=900.0)
    assert config.chains == {}


def test_environment_settings():
    config = load_config(
        {
            "EDGERELAY_RETRIES": "0",
            "EDGERELAY_RETRY_BASE": "0.1",
            "EDGERELAY_RETRY_MAX_BACKOFF": "2",
            "EDGERELAY_RETRY_MAX_WAIT": "5",
            "EDGERELAY_CONNECT_TIMEOUT": "3",
            "EDGERELAY_FIRST_BYTE_TIMEOUT": "30",
            "EDGERELAY_IDLE_TIMEOUT": "15",
            "EDGERELAY_TOTAL_TIMEOUT": "60",
        }
    )
    assert config.retry == RetryPolicy(retries=0, base=0.1, max_backoff=2.0, max_wait=5.0)
    assert config.timeouts == Timeouts(3.0, 30.0, 15.0, 60.0)


def test_upstream_timeout_sets_first_byte_and_idle_unless_they_are_set():
    config = load_config({"EDGERELAY_UPSTREAM_TIMEOUT": "42"})
    assert config.timeouts == Timeouts(10.0, 42.0, 42.0, 900.0)
    assert config.upstream_timeout == 42.0
    config = load_config({"EDGERELAY_UPSTREAM_TIMEOUT": "42", "EDGERELAY_IDLE_TIMEOUT": "7"})
    assert config.timeouts == Timeouts(10.0, 42.0, 7.0, 900.0)


def test_an_alias_is_a_string_or_a_table_with_a_chain():
    config = load_config(
        {
            "EDGERELAY_RETRIES": "3",
            "EDGERELAY_IDLE_TIMEOUT": "30",
            "EDGERELAY_CONFIG": """
[aliases]
fast = "groq/llama-3.3-70b-versatile"

[aliases.smart]
targets = ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-pro", "openai/gpt-4.1"]
retries = 1
fallback_on = [400, 401]
first_byte_timeout = 120
""",
        }
    )
    assert config.aliases == {
        "fast": "groq/llama-3.3-70b-versatile",
        "smart": "anthropic/claude-sonnet-4-5",
    }
    chain = config.chains["smart"]
    assert chain.targets == (
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-pro",
        "openai/gpt-4.1",
    )
    assert chain.policy == RetryPolicy(retries=1, fallback_on=frozenset({400, 401}))
    assert chain.timeouts == Timeouts(10.0, 120.0, 30.0, 900.0)  # the rest from the globals
    assert "fast" not in config.chains


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"EDGERELAY_RETRIES": "-1"}, "EDGERELAY_RETRIES"),
        ({"EDGERELAY_RETRIES": "many"}, "EDGERELAY_RETRIES"),
        ({"EDGERELAY_RETRIES": "11"}, "EDGERELAY_RETRIES"),
        ({"EDGERELAY_RETRY_BASE": "0"}, "EDGERELAY_RETRY_BASE"),
        ({"EDGERELAY_RETRY_MAX_WAIT": "x"}, "EDGERELAY_RETRY_MAX_WAIT"),
        ({"EDGERELAY_CONNECT_TIMEOUT": "-3"}, "EDGERELAY_CONNECT_TIMEOUT"),
        ({"EDGERELAY_TOTAL_TIMEOUT": "never"}, "EDGERELAY_TOTAL_TIMEOUT"),
        ({"EDGERELAY_UPSTREAM_TIMEOUT": "0"}, "EDGERELAY_UPSTREAM_TIMEOUT"),
        ({"EDGERELAY_CONFIG": "[aliases]\nx = 3"}, "EDGERELAY_CONFIG.aliases.x"),
        ({"EDGERELAY_CONFIG": "[aliases.x]\nretries = 1"}, "EDGERELAY_CONFIG.aliases.x.targets"),
        ({"EDGERELAY_CONFIG": "[aliases.x]\ntargets = []"}, "EDGERELAY_CONFIG.aliases.x.targets"),
        (
            {"EDGERELAY_CONFIG": '[aliases.x]\ntargets = ["a"]\nretries = true'},
            "EDGERELAY_CONFIG.aliases.x.retries",
        ),
        (
            {"EDGERELAY_CONFIG": '[aliases.x]\ntargets = ["a"]\nfallback_on = [200]'},
            "EDGERELAY_CONFIG.aliases.x.fallback_on",
        ),
        (
            {"EDGERELAY_CONFIG": '[aliases.x]\ntargets = ["a"]\nidle_timeout = -1'},
            "EDGERELAY_CONFIG.aliases.x.idle_timeout",
        ),
        (
            {"EDGERELAY_CONFIG": '[aliases.x]\ntargets = ["a"]\nretry = 1'},
            "EDGERELAY_CONFIG.aliases.x.retry",
        ),
    ],
)
def test_bad_settings_are_named(env, setting):
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert caught.value.setting == setting


@pytest.mark.parametrize("off", ["0", "off", "OFF", " 0.0 "])
def test_the_idle_timeout_can_be_turned_off(off):
    config = load_config({"EDGERELAY_IDLE_TIMEOUT": off})
    assert config.timeouts.idle == 0.0
    assert config.timeouts.first_byte == 600.0  # the others keep their defaults
    tabled = load_config({"EDGERELAY_CONFIG": f'[limits]\nidle_timeout = "{off.strip()}"\n'})
    assert tabled.timeouts.idle == 0.0


def test_only_the_idle_timeout_takes_off():
    for setting in ("EDGERELAY_FIRST_BYTE_TIMEOUT", "EDGERELAY_UPSTREAM_TIMEOUT"):
        with pytest.raises(ConfigError) as caught:
            load_config({setting: "off"})
        assert caught.value.setting == setting
    with pytest.raises(ConfigError):
        load_config({"EDGERELAY_IDLE_TIMEOUT": "-1"})


def test_the_idle_timeout_counts_as_set_only_when_given():
    assert not load_config({}).idle_timeout_set
    assert load_config({"EDGERELAY_IDLE_TIMEOUT": "30"}).idle_timeout_set
    assert load_config({"EDGERELAY_UPSTREAM_TIMEOUT": "30"}).idle_timeout_set
    assert load_config({"EDGERELAY_CONFIG": "[limits]\nidle_timeout = 30\n"}).idle_timeout_set
    assert not load_config({"EDGERELAY_FIRST_BYTE_TIMEOUT": "30"}).idle_timeout_set
