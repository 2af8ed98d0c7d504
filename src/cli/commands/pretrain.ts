// moco pretrain <data>: flags named as main_moco.py's where they exist.
import { Command, InvalidArgumentError, Option } from 'commander';
import { pretrain, readCheckpoint, resolveConfig, type ConfigOverrides } from '../../train/index.js';
import { ProcessGroup, configFromFlags, distributedTraining, launch, processDevice, relaunchArgv, threadsFromEnv, useDevice, type Backend } from '../../dist/index.js';
import { DOWNLOAD_HELP, downloadData } from './download.js';

const int = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${flag} expects an integer, got '${v}'`);
  return n;
};
const num = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} expects a number, got '${v}'`);
  return n;
};
const intList = (flag: string) => (v: string): number[] => v.split(',').map((s) => int(flag)(s.trim()));

export function register(program: Command): void {
  program
    .command('pretrain')
    .description('MoCo v1/v2 self-supervised pre-training. <data>: a folder in main_moco.py layout (train/, val/ or test/), any folder of images, cifar10:DIR / cifar100:DIR (binary release), or synthetic[:N] (built-in demo data)')
    .argument('<data>', 'dataset')
    .option('--preset <name>', 'recipe: mocov1 (main_moco.py defaults), mocov2 (--mlp --moco-t 0.2 --aug-plus --cos), cifar (the official CIFAR-10 demo)')
    .option('--config <file>', 'JSON or YAML file of settings (flags override it)')
    .option('-a, --arch <name>', 'resnet18 | resnet34 | resnet50 | resnet101')
    .option('--lr <x>', 'initial learning rate', num('--lr'))
    .option('-b, --batch-size <n>', 'total batch size (all processes)', int('--batch-size'))
    .option('--epochs <n>', 'epochs to train', int('--epochs'))
    .option('--schedule <epochs>', 'step-LR milestones (×0.1), e.g. 120,160', intList('--schedule'))
    .option('--cos', 'cosine learning-rate schedule')
    .option('--momentum <x>', 'SGD momentum', num('--momentum'))
    .option('--wd <x>', 'weight decay', num('--wd'))
    .option('--moco-dim <n>', 'feature dimension', int('--moco-dim'))
    .option('--moco-k <n>', 'queue size (negative keys)', int('--moco-k'))
    .option('--moco-m <x>', 'key-encoder momentum', num('--moco-m'))
    .option('--moco-t <x>', 'softmax temperature', num('--moco-t'))
    .option('--mlp', 'MLP projection head (MoCo v2)')
    .option('--aug-plus', 'MoCo v2 augmentation (blur added)')
    .option('--augment <preset>', 'augmentation preset: mocov2 | mocov1 | cifar')
    .option('--cifar-stem', '3×3 stride-1 conv1 without max-pool (32×32 images)')
    .option('--width <n>', 'channels of the first ResNet stage (64 = torchvision)', int('--width'))
    .option('--image-size <px>', 'crop size of the views', int('--image-size'))
    .option('--bn-splits <n>', 'BN sub-batches (one-process ShuffleBN emulation); 1 = plain BN', int('--bn-splits'))
    .option('--no-shuffle-bn', 'do not shuffle the key batch')
    .option('--symmetric', 'symmetric loss (both view orders), as the CIFAR demo option')
    .option('--train-subset <n>', 'train on a seeded random subset of N images', int('--train-subset'))
    .option('--max-steps <n>', 'stop after N optimizer steps in total', int('--max-steps'))
    .option('--resume <path>', 'continue from a checkpoint file or a run directory (its latest checkpoint)')
    .option('--download', DOWNLOAD_HELP)
    .option('--seed <n>', 'seed of everything random', int('--seed'))
    .option('-j, --workers <n>', 'worker threads that decode and augment image files while the model trains (default 2; images small enough to hold in memory are augmented between steps instead)', int('--workers'))
    .option('--threads <n>', 'libtorch threads (default: all cores)', int('--threads'))
    .addOption(new Option('--device <dev>', 'cpu or cuda[:N]'))
    .option('--out <dir>', 'run directory (default runs/<preset>-<time>)')
    .option('--knn-every <epochs>', 'kNN monitor every E epochs on the labelled test/val split (0 = off)', int('--knn-every'))
    .option('--knn-k <n>', 'kNN neighbours', int('--knn-k'))
    .option('--knn-t <x>', 'kNN temperature', num('--knn-t'))
    .addOption(new Option('--knn-feature <kind>', 'kNN monitor features: head (the 128-d output, as the CIFAR demo) or backbone').choices(['head', 'backbone']))
    .option('--save-every-steps <n>', 'also checkpoint every N steps', int('--save-every-steps'))
    .option('--keep-checkpoints <n>', 'checkpoints kept in the run directory', int('--keep-checkpoints'))
    .option('--print-freq <n>', 'log a line every N steps when not on a terminal', int('--print-freq'))
    .option('--quiet', 'no progress output')
    .option('--nproc-per-node <n>', 'start N local processes (Gloo on CPU, NCCL on CUDA), threads split between them', int('--nproc-per-node'))
    .option('--nnodes <n>', 'nodes in a multi-node run (with --nproc-per-node)', int('--nnodes'))
    .option('--node-rank <n>', "this node's index in a multi-node run", int('--node-rank'))
    .option('--dist-url <url>', "tcp://host:port of rank 0's rendezvous (default env://: torchrun's MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE)")
    .option('--world-size <n>', 'main_moco.py style: nodes (with --multiprocessing-distributed) or processes', int('--world-size'))
    .option('--rank <n>', 'main_moco.py style: node rank (with --multiprocessing-distributed) or process rank', int('--rank'))
    .option('--multiprocessing-distributed', 'main_moco.py style: world = nodes × processes per node')
    .addOption(new Option('--dist-backend <name>', 'collective backend').choices(['gloo', 'nccl']))
    .option('--dist-timeout <s>', 'seconds a collective may wait for the other ranks before failing', num('--dist-timeout'))
    .action(async (data: string, f: Record<string, unknown>) => {
      const flags: ConfigOverrides = {
        preset: f.preset as string | undefined, config: f.config as string | undefined, arch: f.arch as string | undefined,
        lr: f.lr as number | undefined, batchSize: f.batchSize as number | undefined, epochs: f.epochs as number | undefined,
        schedule: f.schedule as number[] | undefined, cos: f.cos as boolean | undefined, momentum: f.momentum as number | undefined,
        wd: f.wd as number | undefined, dim: f.mocoDim as number | undefined, K: f.mocoK as number | undefined,
        m: f.mocoM as number | undefined, T: f.mocoT as number | undefined, mlp: f.mlp as boolean | undefined,
        augPlus: f.augPlus as boolean | undefined, augment: f.augment as never, cifarStem: f.cifarStem as boolean | undefined,
        width: f.width as number | undefined, imageSize: f.imageSize as number | undefined, bnSplits: f.bnSplits as number | undefined,
        shuffleBn: f.shuffleBn === false ? false : undefined, symmetric: f.symmetric as boolean | undefined,
        trainSubset: f.trainSubset as number | undefined, maxSteps: f.maxSteps as number | undefined, seed: f.seed as number | undefined,
        workers: f.workers as number | undefined, threads: f.threads as number | undefined, device: f.device as string | undefined,
        out: f.out as string | undefined, knnEvery: f.knnEvery as number | undefined, knnK: f.knnK as number | undefined,
        knnT: f.knnT as number | undefined, knnFeature: f.knnFeature as 'head' | 'backbone' | undefined, saveEverySteps: f.saveEverySteps as number | undefined,
        keepCheckpoints: f.keepCheckpoints as number | undefined, printFreq: f.printFreq as number | undefined,
      };
      const nproc = (f.nprocPerNode as number | undefined) ?? 1;
      if (nproc > 1 && process.env.RANK === undefined) {
        // The launcher: this process only starts the ranks (this same command with torchrun's variables).
        // It downloads once for all of them; they are started with --download too and find the data in place.
        if (f.download) await downloadData(data, 'pretrain');
        const r = await launch({ nprocPerNode: nproc, argv: relaunchArgv(), nnodes: f.nnodes as number | undefined, nodeRank: f.nodeRank as number | undefined, threads: flags.threads });
        process.exit(r.code);
      }
      flags.threads ??= threadsFromEnv();
      const resume = f.resume ? readCheckpoint(f.resume as string) : undefined;
      if (resume && !flags.out) flags.out = resume.config.out;
      const resolved = resolveConfig(data, flags, resume?.config);
      // After the flags are validated. A one-off like --resume, so not part of the config (config.json).
      if (f.download) await downloadData(data, 'pretrain');
      const where = configFromFlags(
        { distUrl: f.distUrl as string | undefined, worldSize: f.worldSize as number | undefined, rank: f.rank as number | undefined, multiprocessingDistributed: Boolean(f.multiprocessingDistributed) },
        { localRank: Number(process.env.LOCAL_RANK ?? 0), nprocPerNode: nproc },
      );
      // One GPU per process (cuda:LOCAL_RANK), made current before NCCL binds to it.
      const config = { ...resolved, device: processDevice(resolved.device, where) };
      useDevice(config.device);
      const timeoutMs = f.distTimeout === undefined ? undefined : 1000 * (f.distTimeout as number);
      const pg = where && where.worldSize > 1
        ? await ProcessGroup.init({ ...where, backend: (f.distBackend as Backend | undefined) ?? (config.device.startsWith('cuda') ? 'nccl' : 'gloo'), timeoutMs })
        : null;
      try {
        const summary = await pretrain(config, { resume, quiet: Boolean(f.quiet), dist: pg ? distributedTraining(pg) : undefined });
        if (!pg || pg.isMain) console.log(JSON.stringify({ ...summary, ...(pg ? { worldSize: pg.worldSize } : {}) }));
      } finally {
        await pg?.close();
      }
    });
}
