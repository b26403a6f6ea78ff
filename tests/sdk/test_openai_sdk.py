"""The official OpenAI Python SDK, unchanged but for its base URL, against a running gateway."""

import json

import httpx
import openai
import pytest


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway, api_key="sk-client-key", max_retries=0)


def test_chat(client, upstream):
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Say hello"}])
    assert r.choices[0].message.content == "Hello from mock (gpt-4o)"
    assert r.usage.total_tokens == 12
    seen = upstream.last()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == "Bearer sk-client-key"


def test_alias_keeps_client_model_name(client, upstream):
    r = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from mock (gpt-4o-mini)"
    assert b'"model": "gpt-4o-mini"' in upstream.last()["body"] or b'"model":"gpt-4o-mini"' in upstream.last()["body"]


def test_streamed_chat(client):
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Say hello"}], stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello from mock"


def test_tools(client, upstream):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=tools)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris"}'
    assert b"get_weather" in upstream.last()["body"]


def test_multimodal_content_parts(client, upstream):
    image = "data:image/png;base64," + "iVBORw0KGgo" * 50
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": image}}]}])
    assert r.choices[0].message.content.startswith("Hello from mock")
    assert image.encode() in upstream.last()["body"]


def test_completions(client):
    r = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")
    assert r.choices[0].text == "Hello from mock"


def test_embeddings(client):
    r = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert r.data[0].embedding == [0.1, 0.2, 0.3]


def test_responses(client):
    r = client.responses.create(model="gpt-4o", input="Say hello")
    assert r.output_text == "Hello from mock (gpt-4o)"


def test_streamed_responses(client):
    stream = client.responses.create(model="gpt-4o", input="Say hello", stream=True)
    deltas, completed = [], None
    for event in stream:
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.completed":
            completed = event.response
    assert "".join(deltas) == "Hello from mock"
    assert completed is not None and completed.output_text == "Hello from mock"


def test_audio_transcription_upload_is_byte_identical(gateway, upstream):
    sent = {}

    def capture(request):
        sent["body"] = request.read()

    http = httpx.Client(event_hooks={"request": [capture]})
    client = openai.OpenAI(base_url=gateway, api_key="sk-client-key", max_retries=0, http_client=http)
    audio = bytes(range(256)) * 64
    r = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", audio, "audio/wav"))
    seen = upstream.last()
    assert seen["path"] == "/v1/audio/transcriptions"
    assert seen["body"] == sent["body"]
    assert audio in seen["body"]
    assert r.text == f"transcribed {len(sent['body'])} bytes"


def test_models(client, upstream):
    ids = [m.id for m in client.models.list()]
    # The exact names, then what the `gpt-*` route's upstream lists and the glob matches
    # (dall-e-3 is not routed; whisper-1 is already listed).
    assert ids == ["fast", "whisper-1", "text-embedding-3-small", "omni-moderation-latest",
                   "tts-1", "dall-e-2", "metered", "gpt-4.1-mini", "gpt-4o"]
    before = len(upstream.requests)
    assert [m.id for m in client.models.list()] == ids
    # Retrieval answers for any name a route serves, without asking the upstream; the
    # upstream's internal name is not shown.
    assert client.models.retrieve("fast").owned_by == "veilgate"
    assert client.models.retrieve("gpt-5-nano").id == "gpt-5-nano"
    assert len(upstream.requests) == before, "the list is cached; retrieval asks nobody"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("dall-e-3")


TOKEN = "ghp_" + "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"


def test_moderations_without_a_model_are_routed_and_redacted(client, upstream):
    r = client.moderations.create(input=f"is {TOKEN} safe?")
    assert r.results[0].flagged is False
    seen = upstream.last()
    assert seen["path"] == "/v1/moderations"
    assert json.loads(seen["body"]) == {"input": "is [REDACTED:github_token] safe?"}


def test_speech_audio_comes_back_byte_for_byte(client, upstream):
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input=f"say {TOKEN}")
    assert audio.content == bytes(range(256)) * 16
    assert json.loads(upstream.last()["body"])["input"] == "say [REDACTED:github_token]"


def test_image_generation_and_edit_upload(client, upstream):
    r = client.images.generate(model="dall-e-2", prompt=f"a cat and {TOKEN}")
    assert r.data[0].revised_prompt == "seen by dall-e-2"
    assert json.loads(upstream.last()["body"])["prompt"] == "a cat and [REDACTED:github_token]"
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    r = client.images.edit(image=("cat.png", png, "image/png"), prompt=f"add {TOKEN}")
    assert r.data[0].b64_json.startswith("iVBORw0KGgo")
    seen = upstream.last()
    assert seen["path"] == "/v1/images/edits"
    assert png in seen["body"]
    assert TOKEN.encode() not in seen["body"]
    assert b"add [REDACTED:github_token]" in seen["body"]


def test_unknown_model_is_a_clean_sdk_error(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="llama-unknown", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    assert "llama-unknown" in e.value.message


def test_secrets_in_prompts_never_reach_the_upstream(client, upstream):
    token = "ghp_" + "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"
    r = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"deploy with {token} please"}])
    assert r.choices[0].message.content.startswith("Hello from mock")
    body = upstream.last()["body"].decode()
    assert token not in body
    assert "[REDACTED:github_token]" in body


def test_streamed_responses_with_usage_requested_by_the_client(client):
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from mock"


def test_spend_budget_refusals_reach_the_sdk_as_its_own_errors(gateway):
    """`metered` costs $1,000 per million tokens under a $0.015 daily budget: the first request
    reserves $0.010 (5 prompt tokens estimated, max_tokens 5) and costs $0.012 (the mock's 12
    tokens); the next cannot reserve its $0.010 and is refused before reaching the upstream."""
    sent = []
    http = httpx.Client(event_hooks={"request": [sent.append]})
    client = openai.OpenAI(base_url=gateway, api_key="sk-client-key", http_client=http)
    messages = [{"role": "user", "content": "hi"}]
    r = client.chat.completions.create(model="metered", messages=messages, max_tokens=5)
    assert r.usage.total_tokens == 12
    sent.clear()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="metered", messages=messages, max_tokens=5)
    err = refused.value
    assert err.code == "budget_exceeded"
    assert err.body["type"] == "insufficient_quota"
    assert "route metered: usd_per_day" in err.message
    retry_after = int(err.response.headers["retry-after"])
    if retry_after > 60:
        # x-should-retry: false: the SDK does not retry what renews only at midnight UTC.
        assert len(sent) == 1, len(sent)
    # A request that could never fit is a plain 400 naming the parameter to lower.
    with pytest.raises(openai.BadRequestError) as too_big:
        client.chat.completions.create(model="metered", messages=messages, max_tokens=100_000)
    assert too_big.value.code == "request_exceeds_budget"
    assert too_big.value.param == "max_tokens"
