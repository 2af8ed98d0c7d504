import type { Command } from 'commander';
import { addEmbedOptions, embedSettings, progress, type EmbedFlags } from './eval-common.js';
import { int } from './flag-numbers.js';
import { DEFAULT_HASH_DISTANCE } from '../../collections/phash.js';
import type { ImageSearch } from '../../collections/search.js';
import type { SearchPlan } from '../../collections/table.js';
import type { Neighbour } from '../../eval/search.js';

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
    const { batchSize } = embedSettings(o);
    if (o.format !== 'json' && o.format !== 'table')
      throw new Error(`--format must be json or table, got '${o.format}'`);
    if ((o.index === undefined) === (o.db === undefined))
      throw new Error('give --index FILE (an embedding file) or --db URI (a collection), one of them');
    if (o.db === undefined && o.where !== undefined)
      throw new Error('--where needs --db (an embedding file has no columns to filter on)');
    const { searchImagesInFile, searchImagesInCollection } = await import('../../collections/search.js');
    const { writeSearchHtml } = await import('../../views/search-html.js');
    const top = int('--top', o.top)!;
    const opts = {
      pretrained: o.pretrained,
      top,
      batchSize,
      nearCopies: int('--near-copies', o.nearCopies),
      hashDistance: int('--hash-distance', o.hashDistance),
      onSkip: (s: { path: string; reason: string }) =>
        console.error(`moco search: skipping query ${s.path}: ${s.reason}`),
      onLog: (l: string) => console.error(`moco search: ${l}`),
      onProgress: progress('moco search'),
    };
    const r: ImageSearch<Neighbour & { label?: string | null }> & { plan?: SearchPlan } =
      o.db !== undefined
        ? await searchImagesInCollection(o.db, o.query, { ...opts, where: o.where, exact: o.exact })
        : await searchImagesInFile(o.index!, o.query, opts);
    if (o.html) {
      const title = o.db !== undefined ? `${o.db}${o.where ? ` where ${o.where}` : ''}` : o.index!;
      await writeSearchHtml(o.html, r.queries, r.results, { inline: o.inline, title: `moco search: ${title}` });
      console.error(`moco search: wrote ${o.html}`);
    }
    if (o.format === 'table') {
      r.queries.forEach((p, i) => {
        console.log(`query ${p}`);
        r.results[i]!.forEach((n, k) => {
          const label = r.plan ? `  ${n.label ?? ''}` : '';
          console.log(`  ${String(k + 1).padStart(3)}  ${n.score.toFixed(4)}${label}  ${n.path}`);
        });
      });
      return;
    }
    const results = r.queries.map((p, i) => ({ query: p, neighbours: r.results[i] }));
    const where = r.plan
      ? { db: o.db, where: o.where ?? null, engine: r.plan.engine, matching: r.plan.matching, top }
      : { index: o.index, top };
    console.log(JSON.stringify({ command: 'search', ...where, results, skipped: r.skipped }));
  });
}
