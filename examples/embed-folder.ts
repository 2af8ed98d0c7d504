// Embeds every image under a folder with an encoder and writes the vectors to an embedding file (the format of
// `moco embed`: .npy with .paths.jsonl and .meta.json beside it, or .safetensors or .jsonl by the extension).
// Usage: node dist/examples/embed-folder.js CHECKPOINT FOLDER OUT.npy
// Prints one JSON line: the rows and dimension written, read back from the file.
import { resolve } from 'node:path';
import { data, EmbeddingIndex, EmbeddingWriter, embedImages, loadEncoder } from 'moco-ts';

const [checkpoint, folder, out] = process.argv.slice(2);
if (!checkpoint || !folder || !out) throw new Error('usage: embed-folder.js CHECKPOINT FOLDER OUT.npy');

// The same folder walk as the moco command: recursive, symbolic links followed once, labels from class folders.
const files = data.walkImages([folder]).found.map((f) => f.path);
const encoder = loadEncoder(checkpoint);
try {
  // Rows stream to the file batch by batch; finish() makes the file appear, complete, at once.
  const writer = new EmbeddingWriter(out, {
    pretrained: resolve(encoder.info.file),
    feature: 'backbone',
    normalized: true,
  });
  const r = await embedImages(encoder, files, { writer, batchSize: 16 });
  writer.finish();
  const index = EmbeddingIndex.open(out);
  try {
    console.log(
      JSON.stringify({
        file: out,
        rows: index.count,
        dim: index.dim,
        skipped: r.skipped.length,
        first: index.paths[0],
      }),
    );
  } finally {
    index.close();
  }
} finally {
  encoder.dispose();
}
