import pytest

from edgerelay.core.config import ConfigError, load_config


def test_defaults():
    config = load_config({})
    assert config.providers["openai"].base_url == "https://api.openai.com/v1"
    assert config.providers["anthropic"].base_url == "https://api.anthropic.com"
    assert config.providers["gemini"].base_url == "https://generativelanguage.googleapis.com"
    assert config.max_body_bytes == 10 * 1024 * 1024
    assert config.providers["openai"].key_required


def test_local_openai_compatible_server_needs_no_key():
    config = load_config({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1/"})
    assert config.providers["openai"].base_url == "http://127.0.0.1:11434/v1"
    assert not config.providers["openai"].key_required


def test_google_api_key_wins_over_gemini_api_key_and_base_url_aliases():
    config = load_config(
        {
            "GEMINI_API_KEY": "g1",
            "GOOGLE_API_KEY": "g2",
            "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9/",
        }
    )
    gemini = config.providers["gemini"]
    assert (gemini.api_key, gemini.api_key_env, gemini.base_url) == (
        "g2",
        "GOOGLE_API_KEY",
        "http://127.0.0.1:9",
    )
    assert load_config({"GEMINI_API_KEY": "g1"}).providers["gemini"].api_key == "g1"


def test_named_providers_from_toml_text_and_file():
    toml = """
[providers.groq]
kind = "openai"
base_url = "https://api.groq.com/openai/v1"
api_key_env = "GROQ_API_KEY"
[providers.claude-eu]
kind = "anthropic"
base_url = "https://eu.example.test"
"""
    config = load_config({"EDGERELAY_CONFIG": toml, "GROQ_API_KEY": "gk"})
    assert config.providers["groq"].api_key == "gk"
    assert config.providers["claude-eu"].kind == "anthropic"
    files = {"/etc/edgerelay.toml": toml}
    from_file = load_config({"EDGERELAY_CONFIG": "/etc/edgerelay.toml"}, files.__getitem__)
    assert from_file.providers.keys() == config.providers.keys()


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"EDGERELAY_MAX_BODY_BYTES": "lots"}, "EDGERELAY_MAX_BODY_BYTES"),
        ({"EDGERELAY_MAX_BODY_BYTES": "-1"}, "EDGERELAY_MAX_BODY_BYTES"),
        ({"OPENAI_BASE_URL": "api.openai.com"}, "OPENAI_BASE_URL"),
        ({"EDGERELAY_CONFIG": "[providers.x\n"}, "EDGERELAY_CONFIG"),
        ({"EDGERELAY_CONFIG": '[providers.x]\nkind = "cohere"\nbase_url="https://x"'}, "kind"),
        ({"EDGERELAY_CONFIG": "[providers.x]\nkind = 'openai'\n"}, "base_url"),
        ({"EDGERELAY_CONFIG": "[aliases]\nfast = 3\n"}, "aliases"),
        ({"EDGERELAY_UPSTREAM_TIMEOUT": "soon"}, "EDGERELAY_UPSTREAM_TIMEOUT"),
        ({"EDGERELAY_STORE_TIMEOUT": "soon"}, "EDGERELAY_STORE_TIMEOUT"),
        ({"EDGERELAY_STORE_TIMEOUT": "0"}, "EDGERELAY_STORE_TIMEOUT"),
    ],
)
def test_bad_settings_are_named(env, setting):
    with pytest.raises(ConfigError) as raised:
        load_config(env)
    assert setting in str(raised.value)


def test_config_path_without_file_access_is_named():
    with pytest.raises(ConfigError, match="EDGERELAY_CONFIG"):
        load_config({"EDGERELAY_CONFIG": "/etc/edgerelay.toml"})


@pytest.mark.parametrize("table", ["limits", "anthropic", "cors"])
def test_a_setting_table_of_the_wrong_type_is_named(table):
    with pytest.raises(ConfigError, match=f"EDGERELAY_CONFIG.{table}"):
        load_config({"EDGERELAY_CONFIG": f"{table} = 3\n"})


def test_cors_origins():
    assert load_config({}).cors_origins == "*"
    origins = "https://app.example.com, http://localhost:5173"
    assert load_config({"EDGERELAY_CORS_ORIGINS": origins}).cors_origins == origins
    with pytest.raises(ConfigError, match="EDGERELAY_CORS_ORIGINS"):
        load_config({"EDGERELAY_CORS_ORIGINS": "app.example.com"})


def test_errors_name_the_setting_but_never_quote_its_value():
    for env in (
        {"EDGERELAY_MAX_BODY_BYTES": "sk-proj-misplaced"},
        {"OPENAI_BASE_URL": "sk-proj-misplaced"},
        {"EDGERELAY_UPSTREAM_TIMEOUT": "sk-proj-misplaced"},
    ):
        with pytest.raises(ConfigError) as raised:
            load_config(env)
        assert "sk-proj-misplaced" not in str(raised.value)
        assert next(iter(env)) in str(raised.value)


def test_trust_env_is_off_unless_set():
    assert load_config({}).trust_env is False
    assert load_config({"EDGERELAY_TRUST_ENV": "true"}).trust_env is True
    assert load_config({"EDGERELAY_TRUST_ENV": "0"}).trust_env is False
    with pytest.raises(ConfigError, match="EDGERELAY_TRUST_ENV"):
        load_config({"EDGERELAY_TRUST_ENV": "maybe"})


def test_a_bad_google_gemini_base_url_is_named_as_set():
    with pytest.raises(ConfigError, match="GOOGLE_GEMINI_BASE_URL"):
        load_config({"GOOGLE_GEMINI_BASE_URL": "generativelanguage.googleapis.com"})


def test_an_unreadable_config_path_is_named_without_quoting_it():
    # A key pasted into EDGERELAY_CONFIG looks like a path; the error must not print it.
    def unreadable(path):
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(ConfigError) as raised:
        load_config({"EDGERELAY_CONFIG": "sk-proj-pasted-by-mistake"}, unreadable)
    assert "EDGERELAY_CONFIG" in str(raised.value)
    assert "No such file or directory" in str(raised.value)
    assert "sk-proj-pasted-by-mistake" not in str(raised.value)


def test_the_hardening_limits_have_defaults_and_are_named_when_bad():
    config = load_config({})
    assert (config.pool_size, config.connect_timeout, config.body_idle_timeout) == (256, 10, 30)
    assert config.max_response_bytes == 32 * 1024 * 1024
    assert config.max_messages == 2000
    set_by_env = load_config({"EDGERELAY_POOL_SIZE": "4", "EDGERELAY_MAX_MESSAGES": "10"})
    assert (set_by_env.pool_size, set_by_env.max_messages) == (4, 10)
    from_toml = load_config({"EDGERELAY_CONFIG": "[limits]\nconnect_timeout = 2.5\n"})
    assert from_toml.connect_timeout == 2.5
    for setting in (
        "EDGERELAY_POOL_SIZE",
        "EDGERELAY_CONNECT_TIMEOUT",
        "EDGERELAY_BODY_IDLE_TIMEOUT",
        "EDGERELAY_MAX_RESPONSE_BYTES",
        "EDGERELAY_MAX_MESSAGES",
    ):
        with pytest.raises(ConfigError) as raised:
            load_config({setting: "0"})
        assert setting in str(raised.value)


def test_the_store_timeout_is_read_once_with_a_default():
    assert load_config({}).store_timeout == 1.0
    assert load_config({"EDGERELAY_STORE_TIMEOUT": " 2.5 "}).store_timeout == 2.5
