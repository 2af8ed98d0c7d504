// Starts the HTTP service in this process on a free port, waits for the model, and embeds an image through
// POST /v1/embed, as any HTTP client would.
// Usage: node dist/examples/serve-embed.js CHECKPOINT IMAGE
// Prints one JSON line: the address, the model's dimension from /v1/info and the first values of the vector.
import { readFileSync } from 'node:fs';
import { buildServer } from 'moco-ts/serve';

const [checkpoint, image] = process.argv.slice(2);
if (!checkpoint || !image) throw new Error('usage: serve-embed.js CHECKPOINT IMAGE');

const app = buildServer({ pretrained: checkpoint, maxBatch: 8 });
try {
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  // The model loads in the background; /readyz answers 503 until it is ready.
  await app.moco.loaded;
  const info = (await (await fetch(`${address}/v1/info`)).json()) as { dim: number; model: { source: string } };
  const res = await fetch(`${address}/v1/embed`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: readFileSync(image),
  });
  if (!res.ok) throw new Error(`/v1/embed answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { dim: number; vectors: number[][] };
  console.log(
    JSON.stringify({
      address,
      model: info.model.source,
      dim: info.dim,
      vectors: body.vectors.length,
      head: body.vectors[0]!.slice(0, 3),
    }),
  );
} finally {
  // Finishes queued work and stops the model's worker process.
  await app.moco.drain();
}
