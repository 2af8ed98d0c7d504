// moco index <images…> --pretrained CKPT --db DIR: embeds a folder into a LanceDB collection, incrementally.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { addEmbedOptions, embedSettings, progress, type EmbedFlags } from './eval-common.js';
import { int } from './flag-numbers.js';

interface IndexCliOpts extends EmbedFlags {
  pretrained: string;
  db: string;
  chunk: string;
  reindex: boolean;
  reembed: boolean;
  indexMinRows?: string;
  nprocPerNode?: string;
  nnodes?: string;
  nodeRank?: string;
}

export function register(program: Command): void {
  const cmd = program
    .command('index')
    .description(
      'embed images into a LanceDB collection {id, path, label, sha256, bytes, mtime, vector}: only new or changed files are embedded; an interrupted run resumes; an ANN index (cosine) is built once the table is large enough',
    )
    .argument('<images...>', 'image files or folders (recursive; a folder layout <root>/<label>/<file> gives labels)')
    .requiredOption('--db <uri>', 'LanceDB directory or URI (created when missing)');
  addEmbedOptions(cmd, { required: true })
    .option('--chunk <n>', 'images embedded per commit (an interruption loses at most two)', '1024')
    .option('--reindex', 'rebuild the ANN index now, whatever the table size', false)
    .option(
      '--reembed',
      "drop the collection's vectors and embed every file it holds (and the ones given) again: for a collection made with another encoder, --feature, --flip or --crops, which is refused without it",
      false,
    )
    .option(
      '--index-min-rows <n>',
      'rows from which the ANN index is built (default: the measured crossover, see docs/collections.md)',
    )
    .option('--nproc-per-node <n>', 'embed with N local processes, each its shard of the files')
    .option('--nnodes <n>', 'nodes in a multi-node run (with --nproc-per-node)')
    .option('--node-rank <n>', "this node's index in a multi-node run")
    .action(async (images: string[], o: IndexCliOpts) => {
      const nproc = int('--nproc-per-node', o.nprocPerNode) ?? 1;
      const { launch, relaunchArgv, threadsFromEnv, configFromEnv, ProcessGroup } = await import('../../dist/index.js');
      if (nproc > 1 && process.env.RANK === undefined) {
        const r = await launch({
          nprocPerNode: nproc,
          argv: relaunchArgv(),
          nnodes: int('--nnodes', o.nnodes),
          nodeRank: int('--node-rank', o.nodeRank, 0),
          threads: int('--threads', o.threads),
        });
        process.exit(r.code);
      }
      const emb = embedSettings({
        ...o,
        threads: o.threads ?? (threadsFromEnv() !== undefined ? String(threadsFromEnv()) : undefined),
      });
      const feat = emb.feature;
      const minRows = int('--index-min-rows', o.indexMinRows);
      const { describeEncoder, loadEncoder } = await import('../../eval/index.js');
      const { walkImages } = await import('../../data/walk.js');
      const { heldFiles, INDEX_MIN_ROWS, indexImages, openForIndexing, rootCause } =
        await import('../../collections/index.js');
      const walked = walkImages(images, {
        onSkip: (x) => console.error(`moco index: skipping ${x.path}: ${x.reason}`),
      });
      let files = walked.found;
      if (!files.length) throw new Error(`no image files under ${images.join(', ')}`);
      const where = configFromEnv();
      const pg = where && where.worldSize > 1 ? await ProcessGroup.init({ ...where, backend: 'gloo' }) : null;
      const rank = pg?.rank ?? 0;
      const tag = pg ? `moco index [rank ${rank}/${pg.worldSize}]` : 'moco index';
      const encoder = loadEncoder(o.pretrained);
      let coll;
      try {
        if (rank === 0) console.error(`${tag}: ${describeEncoder(encoder)}`);
        const pre = encoder.preprocess();
        const meta = {
          dim: encoder.dim(feat),
          pretrained: resolve(encoder.info.file),
          encoderSha256: encoder.weightsSha256(),
          feature: feat,
          arch: encoder.info.arch,
          imageSize: encoder.info.imageSize,
          augment: pre.augment,
          ...(emb.flip ? { flip: true } : {}),
          ...(emb.crops ? { crops: emb.crops.kind } : {}),
        };
        if (o.reembed) {
          // Every rank reads what the collection holds before rank 0 drops it.
          const held = await heldFiles(o.db);
          if (rank === 0 && held.gone)
            console.error(`${tag}: --reembed: ${held.gone} rows name files that are gone; they are dropped`);
          const given = new Set(files.map((f) => resolve(f.path)));
          files = [...held.files.filter((f) => !given.has(f.path)), ...files];
          await pg?.barrier();
        }
        // Rank 0 creates (or with --reembed re-creates) the table before the others open it, so that no two ranks
        // race to create it.
        if (rank === 0)
          coll = await openForIndexing(o.db, meta, {
            reembed: o.reembed,
            warn: (m) => console.error(`${tag}: warning: ${m}`),
          });
        await pg?.barrier();
        coll ??= await openForIndexing(o.db, meta);
        const s = await indexImages(encoder, files, coll, {
          ...emb,
          chunk: int('--chunk', o.chunk),
          shard: pg ? { rank: pg.rank, worldSize: pg.worldSize } : undefined,
          onProgress: progress(tag),
          onSkip: (x) => console.error(`${tag}: skipping ${x.path}: ${x.reason}`),
        });
        console.error(
          `${tag}: ${s.files} files: ${s.added} added, ${s.updated} updated, ${s.unchanged} unchanged${s.skipped.length ? `, ${s.skipped.length} skipped` : ''} (${(s.ms / 1000).toFixed(1)} s)`,
        );
        // The index is built once every rank has appended its shard.
        await pg?.barrier();
        if (rank === 0) {
          const rowsIn = await coll.count();
          const ix = await coll.ensureIndex({ minRows, rebuild: o.reindex }).catch((e: unknown) => {
            throw new Error(
              `--db ${o.db}: all ${rowsIn} rows are committed, but updating its ANN index failed (${rootCause(e)}); search still works (unindexed rows are scanned). Fix the cause and rerun the same \`moco index\` command to update the index`,
              { cause: e },
            );
          });
          const state = await coll.indexState();
          const rows = await coll.count();
          console.error(
            `${tag}: ${rows} rows; ANN index: ${ix.action === 'built' ? `built (${state.type}, ${state.partitions} partitions) in ${(ix.ms / 1000).toFixed(1)} s` : state.type ? `${state.type}, ${state.indexed} rows indexed` : `none (flat scan below ${minRows ?? INDEX_MIN_ROWS} rows)`}`,
          );
          console.log(
            JSON.stringify({
              command: 'index',
              db: o.db,
              rows,
              ...s,
              skipped: [...walked.skipped, ...s.skipped],
              index: { ...state, action: ix.action, ms: Math.round(ix.ms) },
            }),
          );
        }
        await pg?.barrier();
      } finally {
        coll?.close();
        encoder.dispose();
        await pg?.close();
      }
    });
}
