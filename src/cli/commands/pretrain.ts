// moco pretrain [data]: flags named as main_moco.py's where they exist.
import { Command, Option } from 'commander';
import {
  finishedMessage,
  pretrain,
  stderrWarner,
  summaryLine,
  readCheckpoint,
  resolveConfig,
  type ConfigOverrides,
} from '../../train/index.js';
import { addPretrainOptions, overridesFromFlags } from './pretrain-flags.js';
import { int, num } from './flag-numbers.js';
import {
  DEFAULT_TIMEOUT_MS,
  ProcessGroup,
  configFromFlags,
  distributedTraining,
  launch,
  processDevice,
  relaunchArgv,
  signalExitCode,
  threadsFromEnv,
  useDevice,
  type Backend,
} from '../../dist/index.js';
import { DOWNLOAD_HELP, downloadData } from './download.js';
import { neighbourGrid, runObservers } from '../../views/run-views.js';
import { DEFAULT_PRESET, recipe } from '../../moco/index.js';

const r = recipe(DEFAULT_PRESET);

export function register(program: Command): void {
  addPretrainOptions(
    program
      .command('pretrain')
      .description(
        `MoCo v1/v2/v3 self-supervised pre-training (or the end-to-end / memory-bank mechanisms; --preset mocov3, mocov3-cifar, mocov3-vit-* for v3). [data]: a folder in main_moco.py layout (train/, val/ or test/), any folder of images, cifar10:DIR / cifar100:DIR (binary release), or synthetic[:N] (built-in demo data); with --resume it may be left out (the run records its data). Without --preset the recipe is ${DEFAULT_PRESET} (main_moco.py's defaults: ${r.arch}, ${r.imageSize} px, batch ${r.batchSize}, K ${r.K}), which needs a large machine (docs/memory.md: a run that cannot fit is refused before its first step); --preset cifar trains on a small one`,
      )
      .argument('[data]', 'dataset (required unless --resume)'),
  )
    .option(
      '--resume <path>',
      "continue from a checkpoint file or a run directory (its latest checkpoint), on the run's own data and settings; flags given override them (e.g. a larger --epochs trains a finished run further) (default: a new run)",
    )
    .option('--download', `${DOWNLOAD_HELP} (default: off)`)
    .option('--quiet', 'no progress output (default: off)')
    .option(
      '--no-memory-check',
      'start even when the estimated peak memory exceeds the memory available (docs/memory.md) (default: off: such a run is refused before its first step)',
    )
    .option(
      '--nproc-per-node <n>',
      'start N local processes (Gloo on CPU, NCCL on CUDA), threads split between them (default: 1)',
      (v: string) => int('--nproc-per-node', v, -Infinity),
    )
    .option('--nnodes <n>', 'nodes in a multi-node run (with --nproc-per-node) (default: 1)', (v: string) =>
      int('--nnodes', v, -Infinity),
    )
    .option('--node-rank <n>', "this node's index in a multi-node run (default: 0)", (v: string) =>
      int('--node-rank', v, -Infinity),
    )
    .option(
      '--dist-url <url>',
      "tcp://host:port of rank 0's rendezvous (default: env://, torchrun's MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE)",
    )
    .option(
      '--world-size <n>',
      'main_moco.py style: nodes (with --multiprocessing-distributed) or processes (default: WORLD_SIZE from the environment, else one process)',
      (v: string) => int('--world-size', v, -Infinity),
    )
    .option(
      '--rank <n>',
      'main_moco.py style: node rank (with --multiprocessing-distributed) or process rank (default: RANK from the environment, else 0)',
      (v: string) => int('--rank', v, -Infinity),
    )
    .option('--multiprocessing-distributed', 'main_moco.py style: world = nodes × processes per node (default: off)')
    .addOption(
      new Option('--dist-backend <name>', 'collective backend (default: gloo on CPU, nccl on CUDA)').choices([
        'gloo',
        'nccl',
      ]),
    )
    .option(
      '--dist-timeout <s>',
      `seconds a collective may wait for the other ranks before failing (default: ${DEFAULT_TIMEOUT_MS / 1000})`,
      (v: string) => num('--dist-timeout', v),
    )
    .action(async (dataArg: string | undefined, f: Record<string, unknown>) => {
      if (!dataArg && !f.resume)
        throw new Error(
          'pretrain: missing the data argument: moco pretrain DATA … (a folder of images, cifar10:DIR, synthetic[:N]); to continue a run, moco pretrain --resume DIR',
        );
      const flags: ConfigOverrides = overridesFromFlags(f);
      // Without a data argument a resumed run trains on the data its checkpoint records.
      const recordedData = (): string => {
        const ck = readCheckpoint(f.resume as string);
        for (const t of ck.tensors.values()) t.dispose();
        return ck.config.data;
      };
      const nproc = (f.nprocPerNode as number | undefined) ?? 1;
      if (nproc > 1 && process.env.RANK === undefined) {
        // The launcher: this process only starts the ranks (this same command with torchrun's variables).
        // It downloads once for all of them; they are started with --download too and find the data in place.
        if (f.download) await downloadData(dataArg ?? recordedData(), 'pretrain');
        const r = await launch({
          nprocPerNode: nproc,
          argv: relaunchArgv(),
          nnodes: f.nnodes as number | undefined,
          nodeRank: f.nodeRank as number | undefined,
          threads: flags.threads,
        });
        process.exit(r.code);
      }
      flags.threads ??= threadsFromEnv();
      const resume = f.resume ? readCheckpoint(f.resume as string) : undefined;
      if (resume && !flags.out) flags.out = resume.config.out;
      const resolved = resolveConfig(dataArg ?? '', flags, resume?.config);
      // After the flags are validated. A one-off like --resume, so not part of the config (config.json).
      if (f.download) await downloadData(resolved.data, 'pretrain');
      const where = configFromFlags(
        {
          distUrl: f.distUrl as string | undefined,
          worldSize: f.worldSize as number | undefined,
          rank: f.rank as number | undefined,
          multiprocessingDistributed: Boolean(f.multiprocessingDistributed),
        },
        { localRank: Number(process.env.LOCAL_RANK ?? 0), nprocPerNode: nproc },
      );
      // One GPU per process (cuda:LOCAL_RANK), made current before NCCL binds to it.
      const config = { ...resolved, device: processDevice(resolved.device, where) };
      useDevice(config.device);
      const timeoutMs = f.distTimeout === undefined ? undefined : 1000 * (f.distTimeout as number);
      const pg =
        where && where.worldSize > 1
          ? await ProcessGroup.init({
              ...where,
              backend: (f.distBackend as Backend | undefined) ?? (config.device.startsWith('cuda') ? 'nccl' : 'gloo'),
              timeoutMs,
            })
          : null;
      try {
        const warn = stderrWarner(Boolean(f.quiet));
        const summary = await pretrain(config, {
          resume,
          quiet: Boolean(f.quiet),
          memoryCheck: f.memoryCheck !== false,
          handleSignals: true,
          dist: pg ? distributedTraining(pg) : undefined,
          observers: !pg || pg.isMain ? runObservers(config.out, warn) : [],
          neighbourGrid,
        });
        // Stopped by a signal, after its checkpoint was saved: exit as the signal would have (130, 143) so that
        // a script or scheduler sees an interrupted run, not a finished one.
        if (summary.interrupted) process.exitCode = signalExitCode(summary.interrupted);
        if (pg && !pg.isMain) return;
        if (summary.alreadyFinished) {
          // Not an error (a script that resumes until done lands here), but nothing was trained: say so, --quiet or
          // not (it is the answer, not progress). The JSON line has alreadyFinished and the run's recorded figures.
          process.stderr.write(`moco pretrain: ${finishedMessage(config, summary)}\n`);
        }
        console.log(summaryLine(summary, pg ? { worldSize: pg.worldSize } : {}));
      } finally {
        await pg?.close();
      }
    });
}
