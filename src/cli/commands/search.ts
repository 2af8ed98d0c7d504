import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { addEmbedOptions, embedSettings, progress, type EmbedFlags } from './eval-common.js';
import { int } from './flag-numbers.js';
import { DEFAULT_HASH_DISTANCE } from '../../collections/phash.js';

interface SearchCliOpts extends EmbedFlags {
  index?: string;
  db?: string;
  where?: string;
  exact: boolean;
  query: string[];
  top: string;
  html?: string;
  inline: boolean;
  format: string;
  nearCopies: string;
  hashDistance: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('search')
    .description(
      'nearest neighbours (cosine) of query images: exactly in an embedding file from `moco embed` (--index), or in a LanceDB collection from `moco index` (--db, ANN when indexed)',
    )
    .option(
      '--index <file>',
      'embedding file (.npy with its .paths.jsonl, .safetensors, .jsonl): exact search, the reference',
    )
    .option('--db <uri>', 'LanceDB collection from `moco index`')
    .option(
      '--where <filter>',
      "with --db: structured filter, e.g. \"label = 'cat'\", \"label IN ('cat', 'dog') AND bytes > 1000\", \"path LIKE '/data/a/%'\"",
    )
    .option('--exact', 'with --db: flat scan even when the collection has an ANN index', false)
    .requiredOption('--query <paths...>', 'query image files or directories')
    .option('--top <n>', 'neighbours a query', '10')
    .option('--format <f>', 'stdout: json or table', 'json')
    .option('--html <file>', 'also write an HTML grid of each query and its neighbours')
    .option('--inline', 'inline the HTML images as thumbnails (default: paths relative to the page)', false)
    .option(
      '--near-copies <n>',
      'among the top n hits, near-exact copies of the query (pHash within --hash-distance bits: brightness, contrast, gamma, re-encodes, resizes, mirrors, frames) rank first; 0 ranks by cosine alone',
      '50',
    )
    .option(
      '--hash-distance <bits>',
      'largest pHash distance of a near-exact copy (of 63 bits)',
      String(DEFAULT_HASH_DISTANCE),
    );
  // The queries' feature and --flip are the index's (recorded when it was made), not flags.
  addEmbedOptions(cmd, {
    pretrained: 'encoder for the queries (default: the one recorded in the index)',
    feature: false,
    flip: false,
    crops: false,
    batch: '32',
  }).action(async (o: SearchCliOpts) => {
    embedSettings(o);
    if (o.format !== 'json' && o.format !== 'table')
      throw new Error(`--format must be json or table, got '${o.format}'`);
    const { EmbeddingIndex, searchIndex } = await import('../../eval/index.js');
    const { writeSearchHtml } = await import('../../views/search-html.js');
    if ((o.index === undefined) === (o.db === undefined))
      throw new Error('give --index FILE (an embedding file) or --db URI (a collection), one of them');
    if (o.db !== undefined) return searchDb(o);
    if (o.where !== undefined) throw new Error('--where needs --db (an embedding file has no columns to filter on)');
    const index = EmbeddingIndex.open(o.index!);
    try {
      const q = await embedQueries(
        o,
        o.pretrained ?? index.meta.pretrained,
        `${o.index!} does not record its encoder`,
        index.meta.feature ?? 'backbone',
        index.meta.flip === true,
        index.meta.crops === 'center' || index.meta.crops === 'five' ? index.meta.crops : undefined,
      );
      if (q.dim !== index.dim)
        throw new Error(
          `queries are ${q.dim}-d but the index is ${index.dim}-d: pass the --pretrained the index was made with`,
        );
      const top = int('--top', o.top)!;
      const near = nearCopyOpts(o);
      const wide = searchIndex(index, q.vectors, {
        top: Math.max(top, near.pool),
        onProgress: index.count > 1e5 ? progress('moco search') : undefined,
      });
      const results = await Promise.all(
        wide.map(async (hs, i) => (await promote(q.paths[i]!, hs, near)).slice(0, top)),
      );
      if (o.html) {
        await writeSearchHtml(o.html, q.paths, results, { inline: o.inline, title: `moco search: ${o.index!}` });
        console.error(`moco search: wrote ${o.html}`);
      }
      if (o.format === 'table') {
        q.paths.forEach((p, i) => {
          console.log(`query ${p}`);
          results[i]!.forEach((n, r) =>
            console.log(`  ${String(r + 1).padStart(3)}  ${n.score.toFixed(4)}  ${n.path}`),
          );
        });
      } else {
        console.log(
          JSON.stringify({
            command: 'search',
            index: o.index,
            top: int('--top', o.top),
            results: q.paths.map((p, i) => ({ query: p, neighbours: results[i] })),
            skipped: q.skipped,
          }),
        );
      }
    } finally {
      index.close();
    }
  });
}

async function searchDb(o: SearchCliOpts): Promise<void> {
  const { Collection, parseWhere } = await import('../../collections/index.js');
  const { writeSearchHtml } = await import('../../views/search-html.js');
  const filter = o.where !== undefined ? { where: parseWhere(o.where) } : undefined;
  const coll = await Collection.open(o.db!);
  try {
    const q = await embedQueries(
      o,
      o.pretrained ?? coll.meta.pretrained,
      `${o.db!} does not record its encoder`,
      coll.meta.feature === 'head' || coll.meta.feature === 'regions' ? coll.meta.feature : 'backbone',
      coll.meta.flip === true,
      coll.meta.crops,
      (enc) => {
        // Another encoder's queries against these vectors would rank by meaningless scores, however alike the dims.
        const have = coll.meta.encoderSha256;
        const mine = enc.weightsSha256();
        if (!have)
          console.error(
            `moco search: warning: --db ${o.db!} does not record which weights made its vectors (it was made by an older moco), so the query encoder ${enc.info.file} cannot be checked against them; \`moco index\` on it records them`,
          );
        else if (have !== mine)
          throw new Error(
            `--db ${o.db!}: its vectors were made by the encoder ${coll.meta.pretrained ?? '(path not recorded)'} (weights sha256 ${have.slice(0, 12)}…), but the queries would be embedded with ${enc.info.file} (weights sha256 ${mine.slice(0, 12)}…): drop --pretrained to use the collection's encoder, or re-embed the collection with this one (\`moco index <images…> --pretrained ${o.pretrained ?? enc.info.file} --db ${o.db!} --reembed\`)`,
          );
      },
    );
    if (q.dim !== coll.dim)
      throw new Error(
        `queries are ${q.dim}-d but the collection is ${coll.dim}-d: pass the --pretrained it was made with`,
      );
    const top = int('--top', o.top)!;
    const plan = await coll.searchPlan({ top, filter, exact: o.exact });
    const near = nearCopyOpts(o);
    const hits = await coll.search(q.vectors, { top: Math.max(top, near.pool), filter, exact: o.exact });
    const results = await Promise.all(
      hits.map(async (hs, i) =>
        (
          await promote(
            q.paths[i]!,
            hs.map((h) => ({ index: h.id, path: h.path, score: h.score, label: h.label })),
            near,
          )
        ).slice(0, top),
      ),
    );
    if (o.html) {
      await writeSearchHtml(o.html, q.paths, results, {
        inline: o.inline,
        title: `moco search: ${o.db!}${o.where ? ` where ${o.where}` : ''}`,
      });
      console.error(`moco search: wrote ${o.html}`);
    }
    if (o.format === 'table') {
      q.paths.forEach((p, i) => {
        console.log(`query ${p}`);
        results[i]!.forEach((n, r) =>
          console.log(`  ${String(r + 1).padStart(3)}  ${n.score.toFixed(4)}  ${n.label ?? ''}  ${n.path}`),
        );
      });
    } else {
      console.log(
        JSON.stringify({
          command: 'search',
          db: o.db,
          where: o.where ?? null,
          engine: plan.engine,
          matching: plan.matching,
          top,
          results: q.paths.map((p, i) => ({ query: p, neighbours: results[i] })),
          skipped: q.skipped,
        }),
      );
    }
  } finally {
    coll.close();
  }
}

/** The query images embedded with the encoder that made the index (or --pretrained). */
async function embedQueries(
  o: SearchCliOpts,
  ckpt: string | undefined,
  unrecorded: string,
  feature: 'backbone' | 'head' | 'regions',
  flip: boolean,
  crops?: 'center' | 'five',
  check?: (e: import('../../eval/index.js').Encoder) => void,
): Promise<import('../../eval/index.js').Embedded> {
  const { describeEncoder, embedImages, loadEncoder } = await import('../../eval/index.js');
  const { walkImages } = await import('../../data/walk.js');
  if (!ckpt) throw new Error(`${unrecorded}; pass --pretrained`);
  if (!existsSync(ckpt)) throw new Error(`the encoder ${ckpt} the vectors were made with is gone; pass --pretrained`);
  const files = walkImages(o.query, {
    onSkip: (s) => console.error(`moco search: skipping query ${s.path}: ${s.reason}`),
  }).found.map((f) => f.path);
  if (!files.length) throw new Error('no query images found');
  const encoder = loadEncoder(ckpt);
  try {
    console.error(`moco search: ${describeEncoder(encoder)}`);
    check?.(encoder);
    return await embedImages(encoder, files, {
      feature,
      flip,
      ...(crops ? { crops: { kind: crops } } : {}),
      batchSize: embedSettings(o).batchSize,
      onSkip: (s) => console.error(`moco search: skipping query ${s.path}: ${s.reason}`),
    });
  } finally {
    encoder.dispose();
  }
}

/** `--near-copies` and `--hash-distance`, checked. */
function nearCopyOpts(o: SearchCliOpts): { pool: number; maxDistance: number } {
  const pool = int('--near-copies', o.nearCopies)!;
  const maxDistance = int('--hash-distance', o.hashDistance)!;
  if (!(pool >= 0)) throw new Error(`--near-copies must be a whole number ≥ 0, got '${o.nearCopies}'`);
  if (!(maxDistance >= 0 && maxDistance <= 63))
    throw new Error(`--hash-distance must be a whole number of bits from 0 to 63, got '${o.hashDistance}'`);
  return { pool, maxDistance };
}

/** Hashes of hit files, shared by the queries of one command (the same gallery files come back for similar queries). */
const hashCache = new Map<string, Promise<import('../../collections/phash.js').PHash | null>>();

/** One query's hits with its near-exact copies first, unless --near-copies 0. */
async function promote<H extends { path: string }>(
  query: string,
  hits: H[],
  near: { pool: number; maxDistance: number },
): Promise<H[]> {
  const { promoteNearCopyFiles } = await import('../../collections/phash.js');
  return promoteNearCopyFiles(query, hits, { ...near, cache: hashCache });
}
