// moco cluster --k N|auto: spherical mini-batch k-means of a collection (assignments written back to its
// `cluster` column) or of image folders (to CSV), with an HTML page of each cluster's most central images.
import type { Command } from 'commander';
import { parse } from 'node:path';
import { writeTextAtomic } from '../../io/atomic.js';
import { addEmbedOptions } from './eval-common.js';
import { int } from './flag-numbers.js';
import { csvText } from '../../io/csv.js';
import { loadInput, type InputOpts } from './collection-input.js';
import type { KTried } from '../../collections/index.js';

interface ClusterCliOpts extends InputOpts {
  k: string;
  kMax: string;
  seed: string;
  batchSize: string;
  epochs: string;
  device: string;
  out?: string;
  html?: string;
  inline: boolean;
  perCluster: string;
  write: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('cluster')
    .description(
      'spherical (cosine) mini-batch k-means with k-means++ init; assignments written to the collection (column cluster) and/or a CSV; an HTML page of each cluster nearest its centroid',
    )
    .argument('[images...]', 'image files or folders (embedded with --pretrained), instead of --db')
    .requiredOption(
      '--k <n|auto>',
      'clusters, or auto: the k of 2, 4, 8, … up to --k-max with the highest mean cosine silhouette (2,000-row sample)',
    )
    .option('--db <uri>', 'LanceDB collection from `moco index`')
    .option('--where <filter>', 'with --db: cluster only the rows passing a structured filter')
    .option('--k-max <n>', 'with --k auto: the largest k tried', '64')
    .option('--seed <n>', 'seed of the k-means++ draws and the batch order', '0')
    .option('--batch-size <n>', 'rows a mini-batch', '1024')
    .option('--epochs <n>', 'passes over the rows in mini-batches', '10')
    .option('--device <dev>', 'cpu or cuda[:N]', 'cpu')
    .option('--out <file.csv>', 'path,label,cluster,cosine a line')
    .option('--no-write', 'with --db: do not write the cluster column')
    .option('--html <file>', "an HTML page of each cluster's images nearest its centroid")
    .option('--per-cluster <n>', 'images a cluster on the HTML page', '12')
    .option('--inline', 'inline the HTML thumbnails', false);
  addEmbedOptions(cmd, {
    pretrained: 'with image folders: the encoder (run dir, .safetensors, .pth, .pth.tar)',
  }).action(async (images: string[], o: ClusterCliOpts) => {
    const { sphericalKMeans, chooseK, clusterMembers, purity } = await import('../../collections/index.js');
    if (o.out && !o.out.endsWith('.csv')) throw new Error(`--out ${o.out}: expected a .csv file`);
    const seed = int('--seed', o.seed, 0)!;
    const common = {
      seed,
      batchSize: int('--batch-size', o.batchSize)!,
      epochs: int('--epochs', o.epochs)!,
      device: o.device,
    };
    const inp = await loadInput('cluster', images, o);
    try {
      const n = inp.rows.length;
      let k: number;
      let tried: KTried[] = [];
      if (o.k === 'auto') {
        const kMax = int('--k-max', o.kMax, 2)!;
        if (n < 3) throw new Error(`--k auto needs at least 3 rows, got ${n}`);
        const say = (t: KTried): void => console.error(`moco cluster: k ${t.k}: silhouette ${t.silhouette.toFixed(4)}`);
        ({ k, tried } = chooseK(inp.vectors, inp.dim, kMax, common, say));
      } else {
        k = int('--k', o.k)!;
        if (k > n) throw new Error(`--k ${k} is more than the ${n} rows`);
      }
      const t0 = performance.now();
      const r = sphericalKMeans(inp.vectors, inp.dim, { ...common, k });
      const ms = performance.now() - t0;
      const members = clusterMembers(r, k);
      const sizes = members.map((m) => m.length);
      const labels = inp.rows.map((x) => x.label);
      const pur = labels.some((l) => l !== null) ? purity(r.assign, labels) : null;
      console.error(
        `moco cluster: ${n} rows in ${k} clusters (${(ms / 1000).toFixed(1)} s), mean cosine to centroid ${r.meanCos.toFixed(4)}${pur !== null ? `, purity against the folder labels ${(100 * pur).toFixed(1)}%` : ''}`,
      );
      if (inp.coll && o.write) {
        await inp.coll.writeIntColumn(
          'cluster',
          inp.rows.map((x) => x.path),
          r.assign,
        );
        console.error(`moco cluster: wrote column cluster of ${inp.source}`);
      }
      if (o.out) {
        const lines = inp.rows.map((x, i) => [x.path, x.label, r.assign[i]!, r.score[i]!.toFixed(6)]);
        writeTextAtomic(o.out, csvText(['path', 'label', 'cluster', 'cosine'], lines));
      }
      if (o.html) {
        const per = int('--per-cluster', o.perCluster)!;
        const { writeGroupsHtml } = await import('../../views/groups-html.js');
        await writeGroupsHtml(
          o.html,
          members.map((m, c) => {
            const top = m.slice(0, per);
            return {
              title: `cluster ${c}: ${m.length} images`,
              images: top.map((i) => ({
                path: inp.rows[i]!.path,
                caption: `${r.score[i]!.toFixed(3)} ${inp.rows[i]!.label ?? ''} ${parse(inp.rows[i]!.path).base}`,
              })),
            };
          }),
          {
            inline: o.inline,
            title: `moco cluster: ${inp.source}`,
            summary: `${n} images, k ${k}${o.k === 'auto' ? ' (auto: highest silhouette)' : ''}, seed ${seed}; images nearest each centroid first, captioned with their cosine to it`,
          },
        );
        console.error(`moco cluster: wrote ${o.html}`);
      }
      console.log(
        JSON.stringify({
          command: 'cluster',
          source: inp.source,
          rows: n,
          k,
          seed,
          meanCos: r.meanCos,
          purity: pur,
          sizes,
          ...(tried.length ? { auto: tried } : {}),
          ms: Math.round(ms),
        }),
      );
    } finally {
      inp.coll?.close();
    }
  });
}
