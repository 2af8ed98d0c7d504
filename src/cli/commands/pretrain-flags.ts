// The pre-training settings as flags, named as main_moco.py's where they exist: shared by `moco pretrain` and
// `moco sweep` (whose grid cells are pre-training runs).
import { type Command, InvalidArgumentError, Option } from 'commander';
import { RUN_DEFAULTS, SETTINGS, type ConfigOverrides, type PretrainConfig } from '../../train/index.js';
import { DEFAULT_PRESET, recipe } from '../../moco/index.js';

export const int = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${flag} expects an integer, got '${v}'`);
  return n;
};
export const num = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} expects a number, got '${v}'`);
  return n;
};
export const intList = (flag: string) => (v: string): number[] => v.split(',').map((s) => int(flag)(s.trim()));

/** Adds the flags of a pre-training config (everything config.json holds) to `cmd`. */
export function addPretrainOptions(cmd: Command): Command {
  cmd
    .option('--preset <name>', 'recipe: mocov1 (main_moco.py defaults), mocov2 (--mlp --moco-t 0.2 --aug-plus --cos), cifar (the official CIFAR-10 demo), mocov3 (ResNet-50, LARS), mocov3-vit-small, mocov3-vit-base (AdamW), mocov3-cifar (ResNet-18 CIFAR stem, LARS), mocov3-vit-cifar (ViT-Tiny 6 blocks, patch 4, AdamW)')
    .option('--config <file>', 'JSON or YAML file of settings (flags override it)')
    .option('-a, --arch <name>', 'resnet18 | resnet34 | resnet50 | resnet101 | vit_tiny | vit_small | vit_base (ViTs: --mechanism mocov3)')
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
    .addOption(new Option('--mechanism <name>', 'where the negatives come from (MoCo v1 Fig. 3): moco (key encoder + queue), end-to-end (the batch, gradients through both views), memory-bank (one stored vector per image); mocov3 (momentum encoder keys of the batch, predictor, both directions)').choices(['moco', 'end-to-end', 'memory-bank', 'mocov3']))
    .addOption(new Option('--optimizer <name>', 'sgd, or lars / adamw (--mechanism mocov3 only)').choices(['sgd', 'lars', 'adamw']))
    .option('--warmup-epochs <n>', 'MoCo v3: linear lr warm-up epochs, then a half-cosine; lr set every iteration', num('--warmup-epochs'))
    .option('--moco-m-cos', 'MoCo v3: momentum rises from --moco-m to 1 on a half-cosine, set every iteration')
    .option('--moco-mlp-dim <n>', 'MoCo v3: hidden width of the projector and predictor MLPs', int('--moco-mlp-dim'))
    .option('--stop-grad-conv1', 'MoCo v3 ViT: frozen random patch projection')
    .option('--crop-min <x>', "lower scale of the random resized crop (0: the augmentation preset's own)", num('--crop-min'))
    .option('--patch-size <n>', 'ViT patch size', int('--patch-size'))
    .option('--vit-depth <n>', "ViT transformer blocks (0: the arch's own, 12)", int('--vit-depth'))
    .addOption(new Option('--loss <name>', "end-to-end's loss: infonce (N×N logits, MoCo v1) or ntxent (SimCLR's symmetric NT-Xent, 2N−2 negatives)").choices(['infonce', 'ntxent']))
    .addOption(new Option('--bank-sampling <how>', 'memory bank: --moco-k negatives drawn once per batch (shared) or for each sample (per-sample)').choices(['shared', 'per-sample']))
    .option('--bank-momentum <x>', 'memory bank: m of v ← normalize(m·v + (1−m)·q)', num('--bank-momentum'))
    .addOption(new Option('--lr-scaling <rule>', 'linear: use --lr × batch / 256 (main_moco.py\'s rule), none').choices(['none', 'linear']))
    .option('--train-subset <n>', 'train on a seeded random subset of N images', int('--train-subset'))
    .option('--max-steps <n>', 'stop after N optimizer steps in total', int('--max-steps'))
    .option('--seed <n>', 'seed of everything random', int('--seed'))
    .option('-j, --workers <n>', 'worker threads that decode and augment image files while the model trains (images small enough to hold in memory are augmented between steps instead)', int('--workers'))
    .option('--threads <n>', 'libtorch threads', int('--threads'))
    .addOption(new Option('--device <dev>', 'cpu or cuda[:N]'))
    .addOption(new Option('--amp <mode>', 'mixed precision: bf16 = forward under autocast in bfloat16, fp32 master weights (CUDA; CPUs with AVX-512 BF16/AMX, others emulate it slowly)').choices(['off', 'bf16']))
    .option('--channels-last', 'weights and views in channels-last (NHWC) memory')
    .option('--out <dir>', 'run directory')
    .option('--knn-every <epochs>', 'kNN monitor every E epochs on the labelled test/val split (0 = off)', int('--knn-every'))
    .option('--knn-k <n>', 'kNN neighbours', int('--knn-k'))
    .option('--knn-t <x>', 'kNN temperature', num('--knn-t'))
    .addOption(new Option('--knn-feature <kind>', 'kNN monitor features: head (the 128-d output, as the CIFAR demo) or backbone').choices(['head', 'backbone']))
    .option('--save-every-steps <n>', 'also checkpoint every N steps', int('--save-every-steps'))
    .option('--keep-checkpoints <n>', 'checkpoints kept in the run directory', int('--keep-checkpoints'))
    .option('--print-freq <n>', 'log a line every N steps when not on a terminal', int('--print-freq'));
  return showDefaults(cmd);
}

/** Defaults that are not a value of the config as such: the machine's, the mechanism's, or a pattern. */
const DEFAULT_TEXT: Partial<Record<keyof PretrainConfig, string>> = {
  preset: DEFAULT_PRESET,
  threads: 'all cores',
  out: 'runs/<preset>-<time>',
  lrScaling: 'linear for --mechanism end-to-end and mocov3, else none',
};

const camel = (key: string): string => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const shown = (v: unknown): string => (typeof v === 'boolean' ? (v ? 'on' : 'off') : Array.isArray(v) ? v.join(',') : String(v));

/**
 * Appends each config flag's default to its help: the default preset's value (and that it is the preset's), or
 * the run default of RUN_DEFAULTS; --config's is none. The values come from the definitions resolveConfig uses.
 */
function showDefaults(cmd: Command): Command {
  const r = recipe(DEFAULT_PRESET);
  const defaults: Record<string, unknown> = { ...r, ...RUN_DEFAULTS };
  for (const opt of cmd.options) {
    const name = opt.attributeName();
    const s = SETTINGS.find((x) => camel(x.key) === name);
    let text: string | undefined;
    if (name === 'config') text = 'none';
    else if (s) {
      const value = defaults[s.field];
      const on = s.to ? s.to(true) === value : opt.negate ? value === false : value;
      text = DEFAULT_TEXT[s.field] ?? `${shown(s.kind === 'bool' ? on : value)}${s.field in r ? `, preset ${DEFAULT_PRESET}'s` : ''}`;
    }
    if (text !== undefined) opt.description = `${opt.description} (default: ${text})`;
  }
  return cmd;
}

/** The config overrides the flags of {@link addPretrainOptions} gave (undefined: not given). */
export function overridesFromFlags(f: Record<string, unknown>): ConfigOverrides {
  return {
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
    amp: f.amp as 'off' | 'bf16' | undefined, channelsLast: f.channelsLast as boolean | undefined,
    mechanism: f.mechanism as ConfigOverrides['mechanism'], loss: f.loss as ConfigOverrides['loss'],
    bankSampling: f.bankSampling as ConfigOverrides['bankSampling'], bankMomentum: f.bankMomentum as number | undefined,
    lrScaling: f.lrScaling as ConfigOverrides['lrScaling'], optimizer: f.optimizer as ConfigOverrides['optimizer'],
    warmupEpochs: f.warmupEpochs as number | undefined, mocoMCos: f.mocoMCos as boolean | undefined, mlpDim: f.mocoMlpDim as number | undefined,
    stopGradConv1: f.stopGradConv1 as boolean | undefined, cropMin: f.cropMin as number | undefined,
    patchSize: f.patchSize as number | undefined, vitDepth: f.vitDepth as number | undefined,
  };
}
