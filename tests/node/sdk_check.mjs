// The official openai Node SDK against a running gateway: chat, streaming chat, embeddings
// (float, and the SDK's own default: base64 it decodes itself) and one error. Prints one JSON
// object for tests/api/test_node_sdk.py to assert on. Reads BEATRA_URL and BEATRA_KEY.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.BEATRA_URL}/v1`,
  apiKey: process.env.BEATRA_KEY,
  maxRetries: 0,
  timeout: 10_000,
});
const messages = [{ role: "user", content: "Say hi from Node." }];

const chat = await client.chat.completions.create({ model: "gpt-test", messages });

const stream = await client.chat.completions.create({
  model: "local-chat",
  messages,
  stream: true,
  stream_options: { include_usage: true },
});
const chunks = [];
for await (const chunk of stream) {
  chunks.push(chunk);
}

const input = ["the first text", "the second text"];
const asFloat = await client.embeddings.create({
  model: "local-embed",
  input,
  encoding_format: "float",
});
const byDefault = await client.embeddings.create({ model: "local-embed", input });

let error = null;
try {
  await client.embeddings.create({ model: "no-such-model", input: "x" });
} catch (caught) {
  error = { status: caught.status, code: caught.code, type: caught.type };
}

const vectors = (answer) => answer.data.map((item) => Array.from(item.embedding));
console.log(
  JSON.stringify({
    chat: { model: chat.model, content: chat.choices[0].message.content, usage: chat.usage },
    stream: {
      models: [...new Set(chunks.map((chunk) => chunk.model))],
      content: chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? "").join(""),
      usage: chunks[chunks.length - 1].usage,
    },
    embeddings: {
      model: asFloat.model,
      float: vectors(asFloat),
      default: vectors(byDefault),
      usage: asFloat.usage,
    },
    error,
  }),
);
