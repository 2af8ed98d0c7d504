// moco select --n N: a diverse subset to label, by greedy k-center coreset over the embeddings.
import type { Command } from 'commander';
import { writeTextAtomic } from '../../io/atomic.js';
import { addEmbedOptions } from './eval-common.js';
import { int } from './flag-numbers.js';
import { csvText } from '../../io/csv.js';
import { loadInput, type InputOpts, outFormat } from './collection-input.js';

interface SelectCliOpts extends InputOpts {
  n: string;
  seed: string;
  device: string;
  out?: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('select')
    .description(
      'a diverse subset of N images to label: greedy k-center coreset (each pick the image farthest, by cosine, from those picked so far)',
    )
    .argument('[images...]', 'image files or folders (embedded with --pretrained), instead of --db')
    .requiredOption('--n <n>', 'images to pick')
    .option('--db <uri>', 'LanceDB collection from `moco index`')
    .option('--where <filter>', 'with --db: pick among the rows passing a structured filter')
    .option('--seed <n>', 'seed of the first pick', '0')
    .option('--device <dev>', 'cpu or cuda[:N]', 'cpu')
    .option('--out <file>', 'the picks as .json or .csv (default: JSON on stdout)');
  addEmbedOptions(cmd, {
    pretrained: 'with image folders: the encoder (run dir, .safetensors, .pth, .pth.tar)',
  }).action(async (images: string[], o: SelectCliOpts) => {
    const { kCenterGreedy } = await import('../../collections/index.js');
    const count = int('--n', o.n)!;
    const fmt = o.out ? outFormat('--out', o.out) : 'json';
    const inp = await loadInput('select', images, o);
    try {
      if (count > inp.rows.length) throw new Error(`--n ${count} is more than the ${inp.rows.length} images`);
      const t0 = performance.now();
      const c = kCenterGreedy(inp.vectors, inp.dim, count, { seed: int('--seed', o.seed, 0), device: o.device });
      const ms = performance.now() - t0;
      const picks = Array.from(c.picks, (i, r) => ({
        rank: r + 1,
        path: inp.rows[i]!.path,
        label: inp.rows[i]!.label,
        distance: Number.isFinite(c.gain[r]!) ? c.gain[r]! : null,
      }));
      console.error(
        `moco select: ${count} of ${inp.rows.length} images; every image within cosine distance ${c.radius.toFixed(4)} of a pick (${(ms / 1000).toFixed(1)} s)`,
      );
      const summary = {
        command: 'select',
        source: inp.source,
        rows: inp.rows.length,
        n: count,
        radius: c.radius,
        ms: Math.round(ms),
      };
      const lines = picks.map((p) => [p.rank, p.path, p.label, p.distance === null ? '' : p.distance.toFixed(6)]);
      if (o.out && fmt === 'csv') writeTextAtomic(o.out, csvText(['rank', 'path', 'label', 'distance'], lines));
      else if (o.out) writeTextAtomic(o.out, `${JSON.stringify({ ...summary, picks }, null, 1)}\n`);
      console.log(JSON.stringify(o.out ? summary : { ...summary, picks }));
    } finally {
      inp.coll?.close();
    }
  });
}
