// Recognises the layouts pre-trained weights arrive in and reduces them to torchvision (ResNet) or timm (ViT)
// names: official MoCo v1/v2 (`state_dict` with `module.encoder_q.*`, `module.encoder_k.*`, `module.queue`), MoCo
// v3 (`module.base_encoder.*`), DataParallel (`module.*`), bare `encoder_q.*`, and plain torchvision/timm state
// dicts; the head (ResNet's `fc`, a ViT's `head`) is kept apart.
import { extname } from 'node:path';
import { Tensor } from '../torch/index.js';
import { loadSafetensors } from './safetensors.js';
import { loadTorch, PickleObject, type PyValue } from './torch-pickle.js';

/**
 * The head a checkpoint holds: none, one Linear (MoCo v1's or a classifier's `fc`; a ViT's `head`), or MoCo v2's
 * MLP (`fc.0`, ReLU, `fc.2`); models' `HeadKind` names the two a model is built with.
 */
export type CheckpointHead = 'none' | 'fc' | 'mlp';

/** Where the weights came from, as recognised by their key names. */
export type WeightsLayout =
  'moco-official' | 'moco-encoder' | 'mocov3-official' | 'mocov3-encoder' | 'data-parallel' | 'torchvision';

export interface ImportedWeights {
  /** What the backbone is: a ResNet (`conv1.weight`…) or a Vision Transformer (`patch_embed.proj.weight`…). */
  family: 'resnet' | 'vit';
  /** Backbone tensors under torchvision/timm names (`conv1.weight`, `blocks.0.attn.qkv.weight`, …), no head. */
  backbone: Map<string, Tensor>;
  /** Head tensors (`fc.weight` or `fc.0.weight`, `fc.2.bias`…; a ViT's `head.weight`, `head.bias`). */
  head: Map<string, Tensor>;
  headKind: CheckpointHead;
  layout: WeightsLayout;
  /** The prefix stripped from the kept keys ('' when none). */
  prefix: string;
  /** Keys present in the file and not used (key encoder, queue…), as stored. */
  ignored: string[];
  /** `arch`, `epoch` and the like from the checkpoint's top level, when present. */
  meta: Record<string, string | number>;
}

// Encoder prefixes, most specific first: the query encoder is the one MoCo's linear protocol uses.
const PREFIXES: [string, WeightsLayout][] = [
  ['module.encoder_q.', 'moco-official'],
  ['encoder_q.', 'moco-encoder'],
  // MoCo v3's base encoder (backbone + projector); its momentum encoder and predictor are left out.
  ['module.base_encoder.', 'mocov3-official'],
  ['base_encoder.', 'mocov3-encoder'],
  ['module.', 'data-parallel'],
];

/** Finds the tensor dict in a loaded checkpoint: the top level, or its `state_dict`/`model`/`net`/`module` entry. */
export function findStateDict(root: PyValue): { tensors: Map<string, Tensor>; meta: Record<string, string | number> } {
  const meta: Record<string, string | number> = {};
  let dict: Map<PyValue, PyValue> | null = null;
  if (root instanceof Map) {
    for (const [k, v] of root)
      if (typeof k === 'string' && (typeof v === 'string' || typeof v === 'number')) meta[k] = v;
    if ([...root.values()].some((v) => v instanceof Tensor)) dict = root;
    else {
      for (const key of ['state_dict', 'model', 'net', 'module', 'model_state_dict']) {
        const v = root.get(key);
        if (v instanceof Map) {
          dict = v;
          break;
        }
      }
    }
  } else if (root instanceof PickleObject && root.state instanceof Map) {
    dict = root.state;
  }
  if (!dict) throw new Error('no state dict found (expected a dict of tensors, or one under "state_dict"/"model")');
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of dict) if (typeof k === 'string' && v instanceof Tensor) tensors.set(k, v);
  if (!tensors.size) throw new Error('the state dict holds no tensors');
  return { tensors, meta };
}

/**
 * Splits a state dict into backbone and head under torchvision (ResNet) or timm (ViT) names. Tensors not returned (key encoder,
 * queue, other prefixes) are disposed and listed in `ignored`. The input Map is not modified.
 */
export function importStateDict(
  tensors: Map<string, Tensor>,
  meta: Record<string, string | number> = {},
): ImportedWeights {
  let prefix = '';
  let layout: WeightsLayout = 'torchvision';
  for (const [p, l] of PREFIXES) {
    if ([...tensors.keys()].some((k) => k.startsWith(p) && !k.startsWith(`${p}encoder_k.`))) {
      prefix = p;
      layout = l;
      break;
    }
  }
  const family = tensors.has(`${prefix}patch_embed.proj.weight`) ? 'vit' : 'resnet';
  const headPrefix = family === 'vit' ? 'head.' : 'fc.';
  const backbone = new Map<string, Tensor>();
  const head = new Map<string, Tensor>();
  const ignored: string[] = [];
  for (const [k, t] of tensors) {
    // Optimiser state saved beside the weights (our lincls and pre-training checkpoints) is never a weight.
    if (
      !k.startsWith(prefix) ||
      (prefix === 'module.' && k.startsWith('module.encoder_')) ||
      k.startsWith('optimizer.')
    ) {
      ignored.push(k);
      t.dispose();
      continue;
    }
    const name = k.slice(prefix.length);
    // v3's projector (Linear, BN1d, ReLU, …, BN1d) is not a head we rebuild: its features are the backbone's.
    if (name.startsWith(headPrefix) && layout.startsWith('mocov3-')) {
      ignored.push(k);
      t.dispose();
      continue;
    }
    if (name.startsWith(headPrefix)) head.set(name, t);
    else backbone.set(name, t);
  }
  const headKind: CheckpointHead = head.has(`${headPrefix}0.weight`)
    ? 'mlp'
    : head.has(`${headPrefix}weight`)
      ? 'fc'
      : 'none';
  if (family === 'resnet' && !backbone.has('conv1.weight')) {
    for (const t of backbone.values()) t.dispose();
    for (const t of head.values()) t.dispose();
    const sample = [...tensors.keys()].slice(0, 5).join(', ');
    throw new Error(
      `not a ResNet or Vision Transformer state dict: no conv1.weight or patch_embed.proj.weight after stripping '${prefix}' (keys: ${sample}, …)`,
    );
  }
  return { family, backbone, head, headKind, layout, prefix, ignored, meta };
}

/**
 * Loads pre-trained weights from `.pth`/`.pth.tar`/`.pt` (torch.save, zip or legacy) or `.safetensors`
 * and recognises their layout ({@link importStateDict}).
 */
export function loadPretrained(path: string): ImportedWeights {
  if (extname(path) === '.safetensors') {
    const f = loadSafetensors(path);
    const meta: Record<string, string | number> = { ...f.metadata };
    return importStateDict(f.tensors, meta);
  }
  const root = loadTorch(path);
  const { tensors, meta } = findStateDict(root);
  // Tensors elsewhere in the file (optimizer state…) are not needed.
  disposeOthers(root, new Set(tensors.values()));
  return importStateDict(tensors, meta);
}

function disposeOthers(v: PyValue, keep: Set<Tensor>, seen = new Set<object>()): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (v instanceof Tensor) {
    if (!keep.has(v)) v.dispose();
    return;
  }
  if (Array.isArray(v)) for (const x of v) disposeOthers(x, keep, seen);
  else if (v instanceof Map) for (const x of v.values()) disposeOthers(x, keep, seen);
  else if (v instanceof Set) for (const x of v) disposeOthers(x, keep, seen);
  else if (v instanceof PickleObject) {
    for (const x of [...v.args, ...v.listItems, ...v.dictItems.values()]) disposeOthers(x, keep, seen);
    if (v.state !== undefined) disposeOthers(v.state, keep, seen);
  }
}

/** Groups ignored keys by their first two dotted parts, for a readable report. */
function summarise(keys: string[]): string {
  const groups = new Map<string, number>();
  for (const k of keys) {
    const parts = k.split('.');
    const g = parts.length > 2 ? `${parts.slice(0, 2).join('.')}.*` : k;
    groups.set(g, (groups.get(g) ?? 0) + 1);
  }
  return [...groups].map(([g, n]) => (n > 1 ? `${g} (${n})` : g)).join(', ');
}

/** A one-paragraph report: layout, what was loaded, what was ignored. */
export function describeImport(w: ImportedWeights): string {
  const lines = [
    `layout: ${w.layout}${w.prefix ? ` (stripped '${w.prefix}')` : ''}${w.meta.arch ? `, arch ${w.meta.arch}` : ''}${w.meta.epoch !== undefined ? `, epoch ${w.meta.epoch}` : ''}`,
    `backbone: ${w.backbone.size} tensors; head: ${w.headKind === 'none' ? 'none' : `${w.headKind} (${w.head.size} tensors)`}`,
  ];
  if (w.ignored.length) lines.push(`ignored: ${summarise(w.ignored)}`);
  return lines.join('\n');
}

/**
 * The tensors a conversion or export writes: the backbone's and, with `head`, the head's under their torchvision
 * names (the same tensors, not copies: disposing `w` disposes them).
 */
export function exportTensors(w: ImportedWeights, head: boolean): Map<string, Tensor> {
  const tensors = new Map(w.backbone);
  if (head) for (const [k, t] of w.head) tensors.set(k, t);
  return tensors;
}

/**
 * The safetensors metadata of converted weights: `source` (the file or run read), the layout recognised, the head
 * kept ('none' without `head`), then the checkpoint's own metadata as strings.
 */
export function exportMetadata(w: ImportedWeights, source: string, head: boolean): Record<string, string> {
  const meta: Record<string, string> = { source, layout: w.layout, head: head ? w.headKind : 'none' };
  for (const [k, v] of Object.entries(w.meta)) meta[k] = String(v);
  return meta;
}
