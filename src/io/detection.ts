// Pre-trained ResNet weights for detection frameworks: Detectron2's `.pkl` (what MoCo's official
// detection/convert-pretrain-to-detectron2.py writes) and mmdetection's checkpoint (`init_cfg=Pretrained`).
import type { Tensor } from '../torch/index.js';
import { writeTextAtomic } from './atomic.js';
import { NdArray, pickleDumps, type PickleValue } from './pickle-writer.js';
import { saveTorch, type SaveValue } from './torch-save.js';

/**
 * Detectron2's name for a torchvision ResNet key, by the official converter's string rules, in its order: keys
 * without `layer` get `stem.` (`conv1`, `bn1`, and the head `fc.*`, which Detectron2 then leaves unused),
 * `layerN` → `res{N+1}`, `bnK` → `convK.norm`, `downsample.0` → `shortcut`, `downsample.1` → `shortcut.norm`.
 */
export function detectron2Name(name: string): string {
  let k = name.includes('layer') ? name : `stem.${name}`;
  for (const t of [1, 2, 3, 4]) k = k.replaceAll(`layer${t}`, `res${t + 1}`);
  for (const t of [1, 2, 3]) k = k.replaceAll(`bn${t}`, `conv${t}.norm`);
  return k.replaceAll('downsample.0', 'shortcut').replaceAll('downsample.1', 'shortcut.norm');
}

/**
 * Throws unless `sd` (torchvision names) is a ResNet with ImageNet's 7×7 stem, which Detectron2's and
 * mmdetection's ResNets build: a CIFAR stem's 3×3 conv1 cannot load into them.
 */
export function assertDetectionBackbone(sd: Map<string, Tensor>, format: string): void {
  const conv1 = sd.get('conv1.weight');
  if (!conv1) throw new Error(`--format ${format}: not a ResNet (no conv1.weight); only ResNet backbones transfer`);
  const [, , kh, kw] = conv1.shape;
  if (kh !== 7 || kw !== 7) {
    throw new Error(
      `--format ${format}: conv1 is ${kh}×${kw} (a CIFAR stem), and ${format}'s ResNet stem is a ` +
        '7×7 stride-2 conv with max pooling: these weights cannot load into it; pre-train with the ImageNet stem',
    );
  }
}

function ndarray(t: Tensor): NdArray {
  const d = t.data(); // contiguous CPU copy, little-endian
  return new NdArray(t.dtype, t.shape, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
}

/**
 * Writes `sd` (torchvision names, in order) as Detectron2 reads `MODEL.WEIGHTS: x.pkl`: a pickle of
 * `{"model": {detectron2Name: numpy array}, "__author__": "MOCO", "matching_heuristics": True}`, as the official
 * converter writes it (same names, dtypes, values; `num_batches_tracked` and any `fc.*` included as it does).
 * `matching_heuristics` lets Detectron2 match the names to its model by suffix.
 */
export function saveDetectron2(path: string, sd: Map<string, Tensor>): void {
  assertDetectionBackbone(sd, 'detectron2');
  const model = new Map<string, PickleValue>();
  for (const [k, t] of sd) {
    const name = detectron2Name(k);
    if (model.has(name)) throw new Error(`--format detectron2: two keys map to '${name}'`);
    model.set(name, ndarray(t));
  }
  writeTextAtomic(path, pickleDumps({ model, __author__: 'MOCO', matching_heuristics: true }));
}

/**
 * Writes `sd` (torchvision names, which mmdetection's ResNet shares) as a torch.save file of
 * `{"state_dict": OrderedDict, "meta": meta}`, the shape mmcv's `load_checkpoint` (`init_cfg=dict(type='Pretrained',
 * checkpoint=...)`) reads.
 */
export function saveMmdet(path: string, sd: Map<string, Tensor>, meta: Record<string, string | number>): void {
  assertDetectionBackbone(sd, 'mmdet');
  const state: Map<string, SaveValue> = new Map(sd);
  saveTorch(path, { state_dict: state, meta });
}
