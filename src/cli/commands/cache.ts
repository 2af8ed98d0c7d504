import type { Command } from 'commander';
import { cacheDir, cacheMaxBytes, clearCache } from '../../data/decode-cache.js';
import { listCacheSources } from '../../data/decode.js';

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export function register(program: Command): void {
  const cache = program
    .command('cache')
    .description(`the cache of decoded datasets (${cacheDir()}; bounded by MOCO_CACHE_MAX, default 8G)`);
  cache
    .command('ls')
    .description(
      'list the cached datasets, most recently used first: when last used, size, the folder decoded (and its file count), the cache file',
    )
    .option('--json', 'one JSON object instead of a table')
    .action((o: { json?: boolean }) => {
      const entries = listCacheSources();
      const total = entries.reduce((s, e) => s + e.bytes, 0);
      if (o.json) {
        console.log(
          JSON.stringify({
            dir: cacheDir(),
            maxBytes: cacheMaxBytes(),
            totalBytes: total,
            entries: entries.map((e) => ({ ...e, lastUsed: new Date(e.lastUsedMs).toISOString() })),
          }),
        );
        return;
      }
      for (const e of entries) {
        const from = e.source ? `${e.source.dir} (${e.source.files} files)` : '(source not recorded)';
        console.log(`${new Date(e.lastUsedMs).toISOString()}  ${mb(e.bytes).padStart(12)}  ${from}  ${e.file}`);
      }
      console.log(
        `${entries.length} cached dataset(s), ${mb(total)} of at most ${mb(cacheMaxBytes())} in ${cacheDir()}`,
      );
    });
  cache
    .command('clear')
    .description('delete every cached dataset (they are decoded again when next used)')
    .action(() => {
      console.log(`freed ${mb(clearCache())} in ${cacheDir()}`);
    });
}
