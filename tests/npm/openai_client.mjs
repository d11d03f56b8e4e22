// Drives `hass serve` with the official openai package: a chat completion, the same streamed,
// and a text completion. Usage: node openai_client.mjs BASE_URL API_KEY MODEL
// Prints one JSON object with what came back; exits non-zero on any error.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
const messages = [
  { role: "system", content: "Be kind." },
  { role: "user", content: "Tell me a story" },
];

const whole = await client.chat.completions.create({ model, messages, max_tokens: 20 });
const stream = await client.chat.completions.create({
  model, messages, max_tokens: 20, stream: true, stream_options: { include_usage: true },
});
let streamed = "", finish = null, usage = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  const c = chunk.choices[0];
  if (c?.delta?.content) streamed += c.delta.content;
  if (c?.finish_reason) finish = c.finish_reason;
  if (chunk.usage) usage = chunk.usage;
}
const text = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 20 });
let notFound = null;
try {
  await client.chat.completions.create({ model: "no-such-model", messages, max_tokens: 2 });
} catch (e) {
  notFound = e.status;
}
const models = await client.models.list();
console.log(JSON.stringify({
  chat: whole.choices[0].message.content,
  chat_finish: whole.choices[0].finish_reason,
  chat_usage: whole.usage,
  chat_hass: whole.hass,
  streamed, finish, usage, chunks,
  text: text.choices[0].text,
  not_found_status: notFound,
  models: models.data.map((m) => m.id),
}));
