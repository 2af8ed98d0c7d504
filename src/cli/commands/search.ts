import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { applyThreads, int, progress } from './eval-common.js';

interface SearchCliOpts { index: string; query: string[]; top: string; html?: string; inline: boolean; pretrained?: string; format: string; threads?: string; batch: string }

export function register(program: Command): void {
  program
    .command('search')
    .description('exact nearest neighbours (cosine) of query images in an embedding file from `moco embed`')
    .requiredOption('--index <file>', 'embedding file (.npy with its .paths.txt, .safetensors, .jsonl)')
    .requiredOption('--query <paths...>', 'query image files or directories')
    .option('--top <n>', 'neighbours a query', '10')
    .option('--pretrained <ckpt>', 'encoder for the queries (default: the one recorded in the index)')
    .option('--format <f>', 'stdout: json or table', 'json')
    .option('--html <file>', 'also write an HTML grid of each query and its neighbours')
    .option('--inline', 'inline the HTML images as thumbnails (default: paths relative to the page)', false)
    .option('--batch <n>', 'query images per forward', '32')
    .option('--threads <n>', 'libtorch threads')
    .action(async (o: SearchCliOpts) => {
      applyThreads(o.threads);
      if (o.format !== 'json' && o.format !== 'table') throw new Error(`--format must be json or table, got '${o.format}'`);
      const { collectImages, describeEncoder, embedImages, EmbeddingIndex, loadEncoder, searchIndex } = await import('../../eval/index.js');
      const { writeSearchHtml } = await import('../../views/search-html.js');
      const index = EmbeddingIndex.open(o.index);
      try {
        const ckpt = o.pretrained ?? index.meta.pretrained;
        if (!ckpt) throw new Error(`${o.index} does not record its encoder; pass --pretrained`);
        if (!existsSync(ckpt)) throw new Error(`the index's encoder ${ckpt} is gone; pass --pretrained`);
        const files = collectImages(o.query);
        if (!files.length) throw new Error('no query images found');
        const encoder = loadEncoder(ckpt);
        let q;
        try {
          console.error(`moco search: ${describeEncoder(encoder)}`);
          q = await embedImages(encoder, files, {
            feature: index.meta.feature ?? 'backbone', batchSize: int('--batch', o.batch),
            onSkip: (s) => console.error(`moco search: skipping query ${s.path}: ${s.reason}`),
          });
        } finally {
          encoder.dispose();
        }
        if (q.dim !== index.dim) throw new Error(`queries are ${q.dim}-d but the index is ${index.dim}-d: pass the --pretrained the index was made with`);
        const results = searchIndex(index, q.vectors, { top: int('--top', o.top), onProgress: index.count > 1e5 ? progress('moco search') : undefined });
        if (o.html) {
          await writeSearchHtml(o.html, q.paths, results, { inline: o.inline, title: `moco search: ${o.index}` });
          console.error(`moco search: wrote ${o.html}`);
        }
        if (o.format === 'table') {
          q.paths.forEach((p, i) => {
            console.log(`query ${p}`);
            results[i]!.forEach((n, r) => console.log(`  ${String(r + 1).padStart(3)}  ${n.score.toFixed(4)}  ${n.path}`));
          });
        } else {
          console.log(JSON.stringify({ command: 'search', index: o.index, top: int('--top', o.top), results: q.paths.map((p, i) => ({ query: p, neighbours: results[i] })), skipped: q.skipped }));
        }
      } finally {
        index.close();
      }
    });
}
