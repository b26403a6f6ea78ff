"""The official Anthropic Python SDK, unchanged but for its base URL, against a running gateway
whose `claude-*` models go to a mock Messages API upstream that answers with a secret in every
kind of content block."""

import json

import anthropic
import pytest

from mock_upstream import GH_TOKEN, SIGNATURE

REDACTED = "[REDACTED:github_token]"


@pytest.fixture
def client(gateway):
    # ANTHROPIC_BASE_URL is the gateway's root: the SDK adds /v1/messages itself.
    return anthropic.Anthropic(base_url=gateway.removesuffix("/v1"), api_key="sk-client-key",
                               max_retries=0)


def test_messages_are_redacted_both_ways(client, upstream):
    r = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=256,
        system=f"Deploy with {GH_TOKEN}",
        messages=[{"role": "user", "content": f"my token is {GH_TOKEN}"}])
    seen = upstream.last()
    assert seen["path"] == "/v1/messages"
    assert seen["headers"]["x-api-key"] == "sk-ant-provider-key"
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert GH_TOKEN.encode() not in seen["body"]
    assert seen["body"].count(REDACTED.encode()) == 2
    assert r.content[0].text == f"Here is {REDACTED}."
    assert r.content[1].input == {"command": f"echo {REDACTED}"}
    assert r.stop_reason == "tool_use"
    assert r.usage.cache_read_input_tokens == 100


def test_streams_redact_split_secrets_and_thinking_round_trips(client, upstream):
    thinking = {"type": "enabled", "budget_tokens": 1024}
    messages = [{"role": "user", "content": "run it"}]
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=2048, thinking=thinking,
                                messages=messages) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"Here is {REDACTED}."
    think, said, tool = final.content
    assert think.thinking == f"I must not repeat {REDACTED}."
    assert think.signature != SIGNATURE, "sealed: it carries the original for the next turn"
    assert tool.input == {"command": f"echo {REDACTED}"}, "partial JSON, whole again"
    assert GH_TOKEN not in final.model_dump_json()

    # The next turn, as an agent sends it: the upstream gets back the block it signed.
    messages += [{"role": "assistant", "content": final.content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id,
                                               "content": f"done with {GH_TOKEN}"}]}]
    client.messages.create(model="claude-sonnet-4-5", max_tokens=2048, thinking=thinking,
                           messages=messages)
    sent = json.loads(upstream.last()["body"])
    block = sent["messages"][1]["content"][0]
    assert block["thinking"] == f"I must not repeat {GH_TOKEN}."
    assert block["signature"] == SIGNATURE
    assert sent["messages"][2]["content"][0]["content"] == f"done with {REDACTED}"


def test_count_tokens(client, upstream):
    r = client.messages.count_tokens(model="claude-haiku-4-5",
                                     messages=[{"role": "user", "content": f"count {GH_TOKEN}"}])
    assert r.input_tokens == 42
    assert upstream.last()["path"] == "/v1/messages/count_tokens"
    assert GH_TOKEN.encode() not in upstream.last()["body"]


def test_errors_are_the_sdks_own(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="llama-9", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages="not a list")
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_models_list_in_anthropics_shape(client):
    models = list(client.models.list())
    ids = [m.id for m in models]
    assert "fast" in ids and "metered" in ids
    assert all(m.type == "model" and m.display_name == m.id for m in models)
    assert client.models.retrieve("fast").id == "fast"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("llama-9")
