// The official openai Node SDK's Responses API against a running gateway: create, the stream
// helper with its final response, retrieve, a continued conversation and delete. Prints one JSON
// object for tests/api/test_node_sdk_responses.py to assert on. Reads BEATRA_URL and BEATRA_KEY.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.BEATRA_URL}/v1`,
  apiKey: process.env.BEATRA_KEY,
  maxRetries: 0,
  timeout: 10_000,
});

const created = await client.responses.create({
  model: "gpt-test",
  input: "Say hi from Node.",
  instructions: "Be brief.",
});

const stream = client.responses.stream({ model: "claude-test", input: "Stream, please." });
const kinds = [];
for await (const event of stream) {
  kinds.push(event.type);
}
const streamed = await stream.finalResponse();

const retrieved = await client.responses.retrieve(created.id);
const continued = await client.responses.create({
  model: "gpt-test",
  input: "And again.",
  previous_response_id: created.id,
});
await client.responses.delete(created.id);
let gone = null;
try {
  await client.responses.retrieve(created.id);
} catch (caught) {
  gone = { status: caught.status, code: caught.code };
}

console.log(
  JSON.stringify({
    created: { id: created.id, model: created.model, text: created.output_text },
    streamed: { kinds, model: streamed.model, text: streamed.output_text },
    retrieved: { id: retrieved.id, text: retrieved.output_text },
    continued: { previous: continued.previous_response_id, text: continued.output_text },
    gone,
  }),
);
