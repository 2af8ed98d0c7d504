// ONNX export of MoCo v3's Vision Transformer (timm names: patch_embed.proj, cls_token, pos_embed, blocks.N.*,
// norm, head) for inference. The geometry comes from the weights (width, patch, depth, MLP width, grid from the
// position embedding's tokens); the head count does not show in any shape, so the caller passes it. Only standard
// ops that onnxruntime-node and onnxruntime-web both run: GELU is written with Erf (the Gelu op needs opset 20),
// and LayerNorm is LayerNormalization from opset 17 on, ReduceMean/Sub/Mul/Sqrt/Div before it.
import { OnnxAttrType, OnnxDataType, type OnnxModel } from '../io/onnx-proto.js';
import {
  exportOpset,
  GraphBuilder,
  int,
  ints,
  l2Normalize,
  linear,
  onnxModel,
  stateTensor as get,
  writeOnnx,
  type OnnxExportOptions,
} from '../io/onnx-graph.js';
import type { Tensor } from '../torch/index.js';

export interface ViTOnnxOptions extends Omit<OnnxExportOptions, 'bnEps'> {
  /** Attention heads per block (required: the weights do not say). */
  numHeads: number;
  /** LayerNorm epsilon; default 1e-6 (timm's ViT). */
  normEps?: number;
}

/** What the exporter read from a ViT state dict. */
export interface ViTShape {
  embedDim: number;
  /** Patch side in pixels. */
  patch: number;
  /** Patches per side: the position embedding has 1 + grid² tokens. */
  grid: number;
  depth: number;
  /** Hidden width of the blocks' MLP. */
  mlpDim: number;
  /** A Linear `head.*` is present. */
  head: boolean;
}

/** Reads the ViT geometry from timm names and weight shapes. */
export function inferViT(sd: Map<string, Tensor>): ViTShape {
  const proj = get(sd, 'patch_embed.proj.weight');
  const [embedDim, , ph, pw] = proj.shape as [number, number, number, number];
  if (ph !== pw) throw new Error(`ONNX export: non-square ${ph}×${pw} patches are not supported`);
  const tokens = get(sd, 'pos_embed').shape[1]!;
  const grid = Math.round(Math.sqrt(tokens - 1));
  if (grid * grid !== tokens - 1)
    throw new Error(`ONNX export: pos_embed has ${tokens} tokens, not 1 + a square grid of patches`);
  let depth = 0;
  while (sd.has(`blocks.${depth}.norm1.weight`)) depth++;
  if (!depth) throw new Error('ONNX export: no transformer blocks (blocks.0.norm1.weight)');
  const mlpDim = get(sd, 'blocks.0.mlp.fc1.weight').shape[0]!;
  return { embedDim, patch: ph, grid, depth, mlpDim, head: sd.has('head.weight') };
}

/** A 1-D (or, with `dims` [], scalar) int64 initialiser. */
function i64(g: GraphBuilder, name: string, v: number[], dims: number[] = [v.length]): string {
  g.inits.push({ name, dims, dataType: OnnxDataType.INT64, int64Data: v });
  return name;
}

/** Linear on the last axis of an N × L × in value: MatMul with the transposed weight, then Add of the bias. */
function linear3d(g: GraphBuilder, sd: Map<string, Tensor>, x: string, name: string): string {
  const wt = get(sd, `${name}.weight`).t();
  g.init(`${name}.weight`, wt);
  wt.dispose();
  g.init(`${name}.bias`, get(sd, `${name}.bias`));
  return g.node('Add', [g.node('MatMul', [x, `${name}.weight`], `${name}.matmul`), `${name}.bias`], name);
}

/** nn.LayerNorm over the last axis. */
function layerNorm(
  g: GraphBuilder,
  sd: Map<string, Tensor>,
  x: string,
  name: string,
  eps: number,
  opset: number,
): string {
  const w = g.init(`${name}.weight`, get(sd, `${name}.weight`));
  const b = g.init(`${name}.bias`, get(sd, `${name}.bias`));
  if (opset >= 17)
    return g.node('LayerNormalization', [x, w, b], name, [
      int('axis', -1),
      { name: 'epsilon', type: OnnxAttrType.FLOAT, f: eps },
    ]);
  // (x − E[x]) / √(Var[x] + ε) · γ + β with the biased variance, as PyTorch.
  const mean = g.node('ReduceMean', [x], `${name}.mean`, [ints('axes', [-1]), int('keepdims', 1)]);
  const d = g.node('Sub', [x, mean], `${name}.center`);
  const v = g.node('ReduceMean', [g.node('Mul', [d, d], `${name}.sq`)], `${name}.var`, [
    ints('axes', [-1]),
    int('keepdims', 1),
  ]);
  const std = g.node('Sqrt', [g.node('Add', [v, g.scalar(`${name}.eps`, eps)], `${name}.add_eps`)], `${name}.std`);
  const y = g.node('Div', [d, std], `${name}.div`);
  return g.node('Add', [g.node('Mul', [y, w], `${name}.scale`), b], name);
}

/** Exact GELU (nn.GELU's default): 0.5·x·(1 + erf(x/√2)). */
function gelu(g: GraphBuilder, x: string, name: string): string {
  const e = g.node(
    'Erf',
    [g.node('Mul', [x, g.scalar(`${name}.rsqrt2`, Math.SQRT1_2)], `${name}.scale`)],
    `${name}.erf`,
  );
  const onePlus = g.node('Add', [e, g.scalar(`${name}.one`, 1)], `${name}.add`);
  return g.node('Mul', [g.node('Mul', [x, g.scalar(`${name}.half`, 0.5)], `${name}.half_x`), onePlus], name);
}

/**
 * Multi-head self-attention of timm's Attention on N × L × D: qkv → [3, N, heads, L, head_dim],
 * softmax(q·kᵀ·head_dim^-0.5)·v, heads merged back, proj.
 */
function attention(g: GraphBuilder, sd: Map<string, Tensor>, x: string, p: string, dim: number, heads: number): string {
  const hd = dim / heads;
  const qkv = linear3d(g, sd, x, `${p}.qkv`);
  const split = g.node(
    'Transpose',
    [g.node('Reshape', [qkv, i64(g, `${p}.qkv_shape`, [0, -1, 3, heads, hd])], `${p}.qkv_reshape`)],
    `${p}.qkv_permute`,
    [ints('perm', [2, 0, 3, 1, 4])],
  );
  const part = (i: number, n: string): string =>
    g.node('Gather', [split, i64(g, `${p}.${n}_index`, [i], [])], `${p}.${n}`, [int('axis', 0)]);
  const [q, k, v] = [part(0, 'q'), part(1, 'k'), part(2, 'v')];
  const kt = g.node('Transpose', [k], `${p}.k_t`, [ints('perm', [0, 1, 3, 2])]);
  const logits = g.node(
    'Mul',
    [g.node('MatMul', [q, kt], `${p}.qk`), g.scalar(`${p}.scale`, hd ** -0.5)],
    `${p}.qk_scaled`,
  );
  const attn = g.node('Softmax', [logits], `${p}.softmax`, [int('axis', -1)]);
  const o = g.node('Transpose', [g.node('MatMul', [attn, v], `${p}.av`)], `${p}.heads_t`, [ints('perm', [0, 2, 1, 3])]);
  const merged = g.node('Reshape', [o, i64(g, `${p}.merge_shape`, [0, -1, dim])], `${p}.merge`);
  return linear3d(g, sd, merged, `${p}.proj`);
}

/**
 * Builds the ONNX model of a timm-layout ViT state dict (plus `head.*` when `head`). Input `input`
 * [N, 3, S, S] float32 with S = grid·patch fixed (the position embedding is built for one grid); output
 * `features` [N, D] (the cls token after the final norm, as `VisionTransformer.features`) or `embedding`
 * [N, dim] (through the Linear head), L2-normalised unless `normalize` is false.
 */
export function buildViTOnnx(sd: Map<string, Tensor>, opts: ViTOnnxOptions): OnnxModel {
  const s = inferViT(sd);
  const opset = exportOpset(opts);
  const eps = opts.normEps ?? 1e-6;
  const heads = opts.numHeads;
  if (!Number.isInteger(heads) || heads < 1 || s.embedDim % heads)
    throw new Error(`ONNX export: ${heads} attention heads do not divide the ${s.embedDim}-d tokens`);
  if (opts.head && !s.head) throw new Error('ONNX export: --head asked for, but the weights have no head.* Linear');
  const D = s.embedDim;
  const g = new GraphBuilder();

  // patch_embed: conv with kernel = stride = patch, flattened to N × patches × D.
  g.init('patch_embed.proj.weight', get(sd, 'patch_embed.proj.weight'));
  g.init('patch_embed.proj.bias', get(sd, 'patch_embed.proj.bias'));
  let x = g.node('Conv', ['input', 'patch_embed.proj.weight', 'patch_embed.proj.bias'], 'patch_embed.proj', [
    ints('kernel_shape', [s.patch, s.patch]),
    ints('strides', [s.patch, s.patch]),
    ints('pads', [0, 0, 0, 0]),
    ints('dilations', [1, 1]),
    int('group', 1),
  ]);
  x = g.node('Reshape', [x, i64(g, 'patch_embed.flat_shape', [0, D, -1])], 'patch_embed.flatten');
  x = g.node('Transpose', [x], 'patch_embed.transpose', [ints('perm', [0, 2, 1])]);

  // cls token expanded to the batch (N × 1 × D, N read from the input), prepended; then the fixed position embedding.
  const n = g.node('Gather', [g.node('Shape', ['input'], 'batch.shape'), i64(g, 'batch.index', [0])], 'batch.size', [
    int('axis', 0),
  ]);
  const clsShape = g.node('Concat', [n, i64(g, 'cls.ones', [1, 1])], 'cls.shape', [int('axis', 0)]);
  const cls = g.node('Expand', [g.init('cls_token', get(sd, 'cls_token')), clsShape], 'cls.expand');
  x = g.node('Concat', [cls, x], 'cls.prepend', [int('axis', 1)]);
  x = g.node('Add', [x, g.init('pos_embed', get(sd, 'pos_embed'))], 'pos_embed.add');

  for (let i = 0; i < s.depth; i++) {
    const p = `blocks.${i}`;
    const a = attention(g, sd, layerNorm(g, sd, x, `${p}.norm1`, eps, opset), `${p}.attn`, D, heads);
    x = g.node('Add', [x, a], `${p}.add1`);
    const h = gelu(g, linear3d(g, sd, layerNorm(g, sd, x, `${p}.norm2`, eps, opset), `${p}.mlp.fc1`), `${p}.mlp.act`);
    x = g.node('Add', [x, linear3d(g, sd, h, `${p}.mlp.fc2`)], `${p}.add2`);
  }
  // The cls token only: LayerNorm is per token, so selecting before the final norm gives the same numbers.
  x = g.node('Gather', [x, i64(g, 'cls.index', [0], [])], 'cls.select', [int('axis', 1)]);
  x = layerNorm(g, sd, x, 'norm', eps, opset);
  let outDim = D;
  if (opts.head) {
    x = linear(g, sd, x, 'head');
    outDim = get(sd, 'head.weight').shape[0]!;
  }
  // Named apart from the final LayerNorm `norm`, whose written-out form (before opset 17) uses `norm.*` too.
  if (opts.normalize ?? true) x = l2Normalize(g, x, opset, 'l2norm');
  const side = s.grid * s.patch;
  return onnxModel(
    g,
    {
      name: 'moco_vit',
      docString: 'Vision Transformer encoder exported by moco-ts (cls token features)',
      output: x,
      outDim,
      inputSides: [{ dimValue: side }, { dimValue: side }],
      metadata: {
        arch: `vit(${D}-d, ${s.depth} blocks, ${heads} heads, patch ${s.patch})`,
        image_size: String(side),
        head: opts.head ? 'fc' : 'none',
        normalized: String(opts.normalize ?? true),
      },
    },
    opts,
    opset,
  );
}

/** Writes `buildViTOnnx(sd, opts)` to `path` atomically. Returns the file size in bytes. */
export function exportViTOnnx(path: string, sd: Map<string, Tensor>, opts: ViTOnnxOptions): number {
  return writeOnnx(path, buildViTOnnx(sd, opts));
}
