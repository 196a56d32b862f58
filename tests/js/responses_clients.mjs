// The JS clients of /v1/responses, driven by tests/server/test_responses_js_clients.py:
// the official `openai` SDK and the Vercel AI SDK's default `openai(...)` provider (which
// speaks the Responses API). Usage: node responses_clients.mjs <baseURL> <model> <scenario>
// Prints one JSON line with what the client got; any thrown error exits non-zero.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import OpenAI from "openai";

const [baseURL, model, scenario] = process.argv.slice(2);
const WEATHER = {
  type: "object",
  properties: { city: { type: "string" } },
  required: ["city"],
  additionalProperties: false,
};
const calls = [];

function weatherTool() {
  return tool({
    description: "Current weather in a city",
    inputSchema: jsonSchema(WEATHER),
    execute: async ({ city }) => {
      calls.push(city);
      return "12 °C";
    },
  });
}

async function sdk(withTools = true) {
  const client = new OpenAI({ baseURL, apiKey: "client", maxRetries: 0 });
  const created = await client.responses.create({ model, input: "Hi there" });
  const stream = client.responses.stream({ model, input: "Hi again" });
  const types = [];
  for await (const event of stream) types.push(event.type);
  const final = await stream.finalResponse();
  if (!withTools) return { created: created.output_text, streamed: final.output_text, types };
  // A function-call loop: the call, then its output with previous_response_id.
  const tools = [{ type: "function", name: "get_weather", description: "Weather",
    parameters: WEATHER, strict: true }];
  const first = await client.responses.create({ model, input: "Weather in Paris?", tools });
  const call = first.output.find((item) => item.type === "function_call");
  const second = await client.responses.create({
    model, tools, previous_response_id: first.id,
    input: [{ type: "function_call_output", call_id: call.call_id, output: "12 °C" }],
  });
  return { created: created.output_text, streamed: final.output_text, types,
    call: call && [call.name, JSON.parse(call.arguments)], second: second.output_text };
}

async function aiSdk() {
  const provider = createOpenAI({ baseURL, apiKey: "client" });
  const generated = await generateText({ model: provider(model), prompt: "Hi there" });
  const streamed = streamText({ model: provider(model), prompt: "Hi again" });
  let text = "";
  for await (const piece of streamed.textStream) text += piece;
  const looped = await generateText({
    model: provider(model),
    prompt: "Weather in Paris?",
    tools: { get_weather: weatherTool() },
    stopWhen: stepCountIs(3),
  });
  const streamedLoop = streamText({
    model: provider(model),
    prompt: "Weather in Paris?",
    tools: { get_weather: weatherTool() },
    stopWhen: stepCountIs(3),
  });
  let loopText = "";
  for await (const piece of streamedLoop.textStream) loopText += piece;
  return { generated: generated.text, streamed: text, looped: looped.text,
    steps: looped.steps.length, streamedLoop: loopText, calls };
}

const run = { sdk, "sdk-text": () => sdk(false), "ai-sdk": aiSdk }[scenario];
const result = await run();
process.stdout.write(JSON.stringify(result) + "\n");
