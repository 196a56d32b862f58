"""End to end: the OpenAI Agents SDK (openai-agents) on /v1/responses, an agent with one
function tool run streamed, against loopback Anthropic and Gemini upstreams and mock/echo.
Tracing is off: it would call OpenAI's tracing endpoint."""

import asyncio
import json
import os

os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

import openai
import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)

from tests.server.test_responses_sdks import MODELS, anthropic_reply, gemini_reply
from tests.support.loopback import WAIT

set_tracing_disabled(True)
# The Agents SDK's import and run take tens of seconds on a busy 2-core machine.
pytestmark = pytest.mark.timeout(180)

calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    calls.append(city)
    return "12 °C"


def run_streamed(base_url: str, model: str) -> tuple[str, list[str]]:
    async def main():
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=WAIT)
        agent = Agent(
            name="weather",
            instructions="Answer with the tool's help.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model=model, openai_client=client),
        )
        result = Runner.run_streamed(agent, "Weather in Paris?")
        kinds = [event.type async for event in result.stream_events()]
        await client.close()
        return result.final_output, kinds

    return asyncio.run(main())


@pytest.mark.parametrize("name", ["anthropic", "gemini"])
def test_agent_with_a_function_tool_run_streamed(name, upstream, gateway_for):
    upstream.handler = anthropic_reply if name == "anthropic" else gemini_reply
    gateway = gateway_for(
        {
            "ANTHROPIC_BASE_URL": upstream.url,
            "ANTHROPIC_API_KEY": "sk-ant-up",
            "GEMINI_BASE_URL": upstream.url,
            "GEMINI_API_KEY": "g-up",
        }
    )
    calls.clear()
    output, kinds = run_streamed(gateway.url + "/v1", MODELS[name])
    assert output == "It is 12 °C in Paris."
    assert calls == ["Paris"]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert len(upstream.seen) == 2
    second = json.loads(upstream.seen[1].body)
    if name == "anthropic":
        assert second["system"] == "Answer with the tool's help."
        blocks = second["messages"][1]["content"]
        assert blocks[0] == {
            "type": "thinking",
            "thinking": "Use the tool.",
            "signature": "sig-E2E",
        }
    else:
        assert second["contents"][1]["parts"][0]["thoughtSignature"] == "GSIG-E2E"


def test_agent_on_mock_echo(gateway_for):
    gateway = gateway_for({})
    output, _ = run_streamed(gateway.url + "/v1", "mock/echo")
    assert output == "Weather in Paris?"
