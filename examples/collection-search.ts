// Indexes a folder of images into a LanceDB collection (what `moco index` does) and searches it with one of its
// own images, the label filter included. LanceDB is an optional dependency of moco-ts: install @lancedb/lancedb.
// Usage: node dist/examples/collection-search.js CHECKPOINT FOLDER DB_DIR
// Prints one JSON line: what indexing did and the query's nearest neighbours.
import { data, embedImages, loadEncoder } from 'moco-ts';
import { Collection, indexImages } from 'moco-ts/collections';

const [checkpoint, folder, db] = process.argv.slice(2);
if (!checkpoint || !folder || !db) throw new Error('usage: collection-search.js CHECKPOINT FOLDER DB_DIR');

const encoder = loadEncoder(checkpoint);
try {
  // What made the vectors is recorded with the collection, so that a later run with another encoder is refused.
  const coll = await Collection.open(db, {
    dim: encoder.dim('backbone'),
    pretrained: encoder.info.file,
    encoderSha256: encoder.weightsSha256(),
    feature: 'backbone',
  });
  try {
    const found = data.walkImages([folder]).found;
    // Incremental: a second run embeds only new or changed files.
    const summary = await indexImages(encoder, found, coll);
    const query = found[0]!;
    const q = await embedImages(encoder, [query.path]);
    const [hits] = await coll.search(q.vectors, { top: 3 });
    const sameLabel =
      query.label === null ? [] : (await coll.search(q.vectors, { top: 3, filter: { label: query.label } }))[0]!;
    console.log(
      JSON.stringify({
        added: summary.added,
        unchanged: summary.unchanged,
        rows: await coll.count(),
        query: query.path,
        neighbours: hits!.map((h) => ({ path: h.path, label: h.label, score: Number(h.score.toFixed(4)) })),
        sameLabel: sameLabel.map((h) => h.label),
      }),
    );
  } finally {
    coll.close();
  }
} finally {
  encoder.dispose();
}
