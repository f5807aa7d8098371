import json

import pytest

from funreason_pipeline.llm import LLMSettings, Role

KEY = "sk-test-PLANTED-settings-3f9a"


def test_shared_endpoint_with_role_overrides():
    env = {
        "FUNREASON_LLM_BASE_URL": "http://127.0.0.1:8000/v1/",
        "FUNREASON_LLM_API_KEY": KEY,
        "FUNREASON_LLM_MODEL": "qwen3-8b",
        "FUNREASON_LLM_MODEL_CRITIC": "qwen3-32b",
        "FUNREASON_LLM_BASE_URL_REASONING": "http://127.0.0.1:9000/v1",
        "FUNREASON_LLM_TEMPERATURE_QUERYING": "0.3",
        "FUNREASON_LLM_MAX_TOKENS": "777",
        "FUNREASON_LLM_TIMEOUT_REASONING": "42",
        "FUNREASON_LLM_CONCURRENCY": "12",
    }
    s = LLMSettings.from_env(env)
    assert s.concurrency == 12
    assert s.role("tooling").base_url == "http://127.0.0.1:8000/v1"  # trailing slash normalised
    assert s.role(Role.REASONING).base_url == "http://127.0.0.1:9000/v1"
    assert s.role("critic").model == "qwen3-32b"
    assert s.role("tooling").model == "qwen3-8b"
    assert s.role("querying").temperature == 0.3
    assert s.role("tooling").temperature == 0.7  # role default kept
    assert all(s.role(r).max_tokens == 777 for r in Role)
    assert s.role("reasoning").timeout_s == 42
    assert not any(s.is_offline(r) for r in Role)
    assert s.role("critic").api_key.get_secret_value() == KEY


def test_no_base_url_means_offline_per_role():
    s = LLMSettings.from_env(
        {"FUNREASON_LLM_BASE_URL_CRITIC": "http://127.0.0.1:1/v1", "FUNREASON_LLM_MODEL_CRITIC": "judge"}
    )
    assert s.is_offline("tooling") and s.is_offline("querying") and s.is_offline("reasoning")
    assert not s.is_offline("critic")
    assert s.role("tooling").model_label == "offline"
    assert LLMSettings.from_env({}).concurrency == 32


def test_base_url_without_model_is_a_clear_error():
    with pytest.raises(ValueError, match="FUNREASON_LLM_MODEL"):
        LLMSettings.from_env({"FUNREASON_LLM_BASE_URL": "http://127.0.0.1:1/v1"})
    with pytest.raises(ValueError, match="CONCURRENCY"):
        LLMSettings.from_env({"FUNREASON_LLM_CONCURRENCY": "many"})


def test_api_key_never_shown_and_not_in_fingerprint():
    env = {
        "FUNREASON_LLM_BASE_URL": "http://127.0.0.1:8000/v1",
        "FUNREASON_LLM_API_KEY": KEY,
        "FUNREASON_LLM_MODEL": "m",
    }
    s = LLMSettings.from_env(env)
    for text in (
        repr(s),
        str(s),
        s.model_dump_json(),
        json.dumps(s.model_dump(mode="json")),
        repr(s.role("tooling")),
        str(s.model_dump()),
        s.role("tooling").fingerprint(),
    ):
        assert KEY not in text
    # the fingerprint does not depend on the key, but on model / url / sampling
    other_key = LLMSettings.from_env({**env, "FUNREASON_LLM_API_KEY": "sk-other"})
    assert other_key.fingerprint("tooling") == s.fingerprint("tooling")
    other_model = LLMSettings.from_env({**env, "FUNREASON_LLM_MODEL": "m2"})
    assert other_model.fingerprint("tooling") != s.fingerprint("tooling")
    other_temp = LLMSettings.from_env({**env, "FUNREASON_LLM_TEMPERATURE_TOOLING": "0.1"})
    assert other_temp.fingerprint("tooling") != s.fingerprint("tooling")
    assert other_temp.fingerprint("critic") == s.fingerprint("critic")


def test_tool_calling_is_native_unless_a_role_asks_for_json():
    base = {"FUNREASON_LLM_BASE_URL": "http://127.0.0.1:8000/v1", "FUNREASON_LLM_MODEL": "m"}
    s = LLMSettings.from_env(base)
    assert {s.role(r).tool_calling for r in Role} == {"native"}
    s = LLMSettings.from_env({**base, "FUNREASON_LLM_TOOL_CALLING_REASONING": "JSON"})
    assert s.role("reasoning").tool_calling == "json" and s.role("critic").tool_calling == "native"
    # the default keeps earlier fingerprints; the fallback is another request shape, so another fingerprint
    assert LLMSettings.from_env(base).fingerprint("reasoning") != s.fingerprint("reasoning")
    assert LLMSettings.from_env(base).fingerprint("critic") == s.fingerprint("critic")
    with pytest.raises(ValueError, match="TOOL_CALLING.*native or json"):
        LLMSettings.from_env({**base, "FUNREASON_LLM_TOOL_CALLING": "xml"})


def test_reasoning_content_is_read_apart_from_the_content():
    from funreason_pipeline.llm.transport import parse_completion

    body = {"choices": [{"message": {"content": "", "reasoning_content": "I need the id first.",
                                     "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{}"}}]},
                         "finish_reason": "tool_calls"}]}
    content, calls, finish, _, _, reasoning = parse_completion(json.dumps(body))
    assert (content, [c.name for c in calls], finish, reasoning) == ("", ["f"], "tool_calls", "I need the id first.")
