// `moco pretrain --init-from CKPT`: a new run — epoch 0, a fresh queue (or bank), optimizer and lr schedule — whose
// encoders start from existing weights (domain-adaptive continued pre-training; docs/transfer.md). Unlike --resume
// nothing else of the checkpoint is taken. The file is read by the readers `moco embed` and `lincls` use
// (loadCheckpointWeights): official MoCo v1/v2/v3 `.pth.tar`, torchvision `.pth`, our run directories and
// safetensors files, reduced to torchvision (ResNet) or timm (ViT) names.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import type { Tensor } from '../torch/index.js';
import type { ImportedWeights } from '../io/pretrained.js';
import type { Mechanism } from '../moco/index.js';
import { headRoleOf, loadCheckpointWeights } from '../eval/index.js';
import type { PretrainConfig } from './config.js';

/** The weights a run starts from, as read. Dispose with {@link disposeInitSource}. */
export interface InitSource {
  /** The file read (a run directory resolves to its newest intact checkpoint). */
  file: string;
  /** SHA-256 (hex) of the file's bytes. */
  sha256: string;
  weights: ImportedWeights;
}

// How config.json records the source, as container images pin a digest: the file and the hash of its bytes.
const PINNED = /^(.*)@sha256:([0-9a-f]{64})$/;

/** `FILE@sha256:HEX`: what a run's config records as its `initFrom`, and what --init-from takes back. */
export function pinnedInitFrom(src: Pick<InitSource, 'file' | 'sha256'>): string {
  return `${src.file}@sha256:${src.sha256}`;
}

function sha256OfFile(file: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 24);
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * Reads the checkpoint `spec` names (a file, a run directory, or `FILE@sha256:HEX` as a run's config records it:
 * then the file must still have that hash).
 */
export function readInitSource(spec: string): InitSource {
  const pin = PINNED.exec(spec);
  const path = pin ? pin[1]! : spec;
  let read: ReturnType<typeof loadCheckpointWeights>;
  try {
    read = loadCheckpointWeights(path);
  } catch (e) {
    throw new Error(`--init-from ${spec}: ${(e as Error).message}`, { cause: e });
  }
  const src = { file: read.file, sha256: sha256OfFile(read.file), weights: read.weights };
  if (pin && src.sha256 !== pin[2]) {
    disposeInitSource(src);
    throw new Error(
      `--init-from ${spec}: ${src.file} now has SHA-256 ${src.sha256}, not the ${pin[2]} recorded: the file changed since the run read it; pass --init-from ${path} to start from it as it is now`,
    );
  }
  return src;
}

export function disposeInitSource(src: InitSource): void {
  for (const t of [...src.weights.backbone.values(), ...src.weights.head.values()]) t.dispose();
}

const shapeText = (t: Tensor | undefined): string => (t ? `[${t.shape.join(', ')}]` : 'none');
const sameShape = (a: Tensor, b: Tensor): boolean =>
  a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

/**
 * The key encoder of each mechanism that has one, and the encoder it copies. MoCo's builder initialises
 * encoder_k as a copy of encoder_q, so a run started from weights does the same, even from an official v1/v2
 * checkpoint that holds its own encoder_k: that key encoder belongs with the checkpoint's queue, which a new run
 * does not take, and keys of a fresh queue from the loaded query encoder are consistent from the first step. MoCo
 * v3's builder copies base_encoder's parameters into momentum_encoder likewise. A v3 checkpoint carries a momentum
 * encoder too, but the readers keep only its base encoder's backbone: the projector starts fresh, so the
 * checkpoint's momentum encoder (its backbone and its trained projector) would be a target the new base encoder
 * is not related to. A v3 run therefore starts as builder.py's initialisation would from that backbone: momentum
 * encoder = base encoder (buffers included, as for MoCo), fresh predictor.
 */
const KEY_ENCODER: Partial<Record<Mechanism['mechanism'], [key: string, query: string]>> = {
  moco: ['encoder_k.', 'encoder_q.'],
  mocov3: ['momentum_encoder.', 'base_encoder.'],
};

/** What else of a mechanism a new run starts fresh, for the log line. */
const FRESH: Partial<Record<Mechanism['mechanism'], string>> = { moco: 'queue, ', 'memory-bank': 'memory bank, ' };

/** The run's encoder in words, for the refusal: `resnet18 (CIFAR stem) width 8`. */
function runEncoder(c: PretrainConfig): string {
  if (/^vit/.test(c.arch)) return `${c.arch} (patch ${c.patchSize}, ${c.imageSize} px)`;
  return `${c.arch}${c.cifarStem ? ' (CIFAR stem)' : ''} width ${c.width}`;
}

/**
 * Loads `src` into the query encoder of `mech` — the backbone always, the projection head when the checkpoint has
 * a MoCo head of the same shape — then makes the key encoder a copy of it (KEY_ENCODER). A backbone that differs
 * from the run's in any tensor is refused before anything is loaded, naming the first differing tensor. `note`
 * gets one line when the head starts fresh and why, and `log` one line saying what was loaded.
 */
export function initEncoders(
  mech: Mechanism,
  src: InitSource,
  c: PretrainConfig,
  note: (line: string) => void,
  log: (line: string) => void = () => {},
): void {
  const w = src.weights;
  const enc = mech.encoderQ;
  const own = enc.stateDict();
  const headPrefix = own.has('patch_embed.proj.weight') ? 'head.' : 'fc.';
  const refuse = (name: string, theirs: Tensor | undefined, ours: Tensor | undefined): never => {
    throw new Error(
      `--init-from ${src.file}: its backbone does not fit this run's ${runEncoder(c)}: the first differing tensor is ${name}, ${shapeText(theirs)} in the checkpoint, ${shapeText(ours)} in the run; pass the architecture the checkpoint was trained with (-a/--arch, --width, --cifar-stem; a ViT's --patch-size, --image-size, --vit-depth), or another --init-from`,
    );
  };
  for (const [k, t] of own) {
    if (k.startsWith(headPrefix)) continue;
    const s = w.backbone.get(k);
    // BN's batch counter steers nothing MoCo uses (the momentum is fixed); files without it keep the run's.
    if (!s && k.endsWith('num_batches_tracked')) continue;
    if (!s || !sameShape(s, t)) refuse(k, s, t);
  }
  for (const [k, s] of w.backbone) if (!own.has(k)) refuse(k, s, undefined);
  enc.loadStateDict(w.backbone, { strict: false });

  const ownHead = [...own].filter(([k]) => k.startsWith(headPrefix));
  const role = headRoleOf(w);
  const headFits =
    ownHead.length === w.head.size && ownHead.every(([k, t]) => w.head.has(k) && sameShape(w.head.get(k)!, t));
  let head: string;
  if (role === 'projection' && headFits) {
    enc.loadStateDict(w.head, { strict: false });
    head = `projection head (${w.headKind}) loaded`;
  } else {
    const out = (m: Map<string, Tensor> | [string, Tensor][]): string =>
      shapeText([...m].filter(([k]) => /(^|\.)weight$/.test(k)).at(-1)?.[1]);
    const why = w.layout.startsWith('mocov3-')
      ? "is a MoCo v3 checkpoint, of which only the base encoder's backbone is read (not its projector or predictor)"
      : role === null
        ? 'has no projection head'
        : role === 'classifier'
          ? `has a classifier ${headPrefix.slice(0, -1)} (${out(w.head)}), not a projection head`
          : `has a projection head (${w.headKind}, ${out(w.head)}) of another shape than this run's (${c.head}, ${out(ownHead)})`;
    note(`--init-from ${src.file} ${why}: the run's projection head starts from random weights`);
    head = 'projection head fresh';
  }

  const pair = KEY_ENCODER[mech.mechanism];
  if (pair) {
    const [key, query] = pair;
    const all = mech.stateDict();
    const copy = new Map<string, Tensor>();
    for (const k of all.keys()) if (k.startsWith(key)) copy.set(k, all.get(query + k.slice(key.length))!);
    mech.loadStateDict(copy, { strict: false });
  }
  log(
    `initialised from ${src.file} (sha256 ${src.sha256.slice(0, 12)}…, ${w.layout}): backbone loaded, ${head}${pair ? `, ${pair[0].slice(0, -1)} = ${pair[1].slice(0, -1)}` : ''}; ${FRESH[mech.mechanism] ?? ''}optimizer and lr schedule fresh, epoch 0`,
  );
}
