// The Vision Transformer of MoCo v3 (moco-v3's vits.py: VisionTransformerMoCo on timm's VisionTransformer), laid
// out with timm's module names (patch_embed.proj, cls_token, pos_embed, blocks.N.{norm1, attn.qkv, attn.proj,
// norm2, mlp.fc1, mlp.fc2}, norm, head) so that timm and official MoCo v3 state dicts load by name.
import { Tensor, arange, cat, noGrad, tidy, zeros } from '../torch/index.js';
import { Conv2d, GELU, Identity, LayerNorm, Linear, Module, Sequential } from '../nn/index.js';
import { normal_, uniform_, xavierUniform_, zeros_ } from '../nn/init.js';

type Pair = number | [number, number];

function pair(v: Pair): [number, number] {
  return Array.isArray(v) ? v : [v, v];
}

/** Image → sequence of patch embeddings: a conv with kernel = stride = patch size, flattened to N × L × D. */
export class PatchEmbed extends Module {
  readonly proj: Conv2d;
  readonly imgSize: [number, number];
  readonly patchSize: [number, number];
  /** Patches along (height, width). */
  readonly gridSize: [number, number];
  readonly numPatches: number;

  constructor(imgSize: Pair, patchSize: Pair, inChans: number, embedDim: number) {
    super();
    this.imgSize = pair(imgSize);
    this.patchSize = pair(patchSize);
    const [h, w] = this.imgSize;
    const [ph, pw] = this.patchSize;
    if (h % ph || w % pw)
      throw new RangeError(`PatchEmbed: image ${h}×${w} is not a whole number of ${ph}×${pw} patches`);
    this.gridSize = [h / ph, w / pw];
    this.numPatches = this.gridSize[0] * this.gridSize[1];
    this.proj = this.registerModule('proj', new Conv2d(inChans, embedDim, this.patchSize, { stride: this.patchSize }));
  }

  forward(x: Tensor): Tensor {
    const [, , h, w] = x.shape;
    // The position embedding is built for one grid; another image size would fail later with a shape error.
    if (h !== this.imgSize[0] || w !== this.imgSize[1]) {
      throw new RangeError(
        `PatchEmbed: input ${h}×${w} does not match the model's image size ${this.imgSize[0]}×${this.imgSize[1]}`,
      );
    }
    return this.proj.forward(x).flatten(2).transpose(1, 2);
  }
}

/** Multi-head self-attention with one fused qkv projection (timm's Attention, no dropout). */
export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  readonly scale: number;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    qkvBias = true,
  ) {
    super();
    if (dim % numHeads) throw new RangeError(`Attention: dim ${dim} is not divisible by ${numHeads} heads`);
    this.headDim = dim / numHeads;
    this.scale = this.headDim ** -0.5;
    this.qkv = this.registerModule('qkv', new Linear(dim, dim * 3, qkvBias));
    this.proj = this.registerModule('proj', new Linear(dim, dim));
  }

  forward(x: Tensor): Tensor {
    const [b, n, c] = x.shape as [number, number, number];
    // libtorch 1.13 has no scaled_dot_product_attention: softmax(q·kᵀ·scale)·v written out, as timm 0.4 does.
    const qkv = this.qkv.forward(x).reshape(b, n, 3, this.numHeads, this.headDim).permute(2, 0, 3, 1, 4);
    const [q, k, v] = qkv.unbind(0) as [Tensor, Tensor, Tensor];
    const attn = q.matmul(k.transpose(-2, -1)).mul(this.scale).softmax(-1);
    return this.proj.forward(attn.matmul(v).transpose(1, 2).reshape(b, n, c));
  }
}

/** fc1 → GELU → fc2 (timm's Mlp, no dropout). */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly act: GELU;
  readonly fc2: Linear;

  constructor(inFeatures: number, hiddenFeatures: number) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(inFeatures, hiddenFeatures));
    this.act = this.registerModule('act', new GELU());
    this.fc2 = this.registerModule('fc2', new Linear(hiddenFeatures, inFeatures));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x)));
  }
}

/** Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)). */
export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(dim: number, numHeads: number, mlpRatio: number, qkvBias: boolean, eps: number) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, { eps }));
    this.attn = this.registerModule('attn', new Attention(dim, numHeads, qkvBias));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, { eps }));
    this.mlp = this.registerModule('mlp', new Mlp(dim, Math.floor(dim * mlpRatio)));
  }

  forward(x: Tensor): Tensor {
    // A scope per block: what autograd does not save (q·kᵀ before its scaling, the scaled scores; under noGrad
    // every activation) is freed at the block's end, as PyTorch frees it, not at the end of the step.
    return tidy(() => {
      const y = x.add(this.attn.forward(this.norm1.forward(x)));
      return y.add(this.mlp.forward(this.norm2.forward(y)));
    });
  }
}

/**
 * MoCo v3's fixed 2D sin-cos position embedding, 1 × (1 + h·w) × dim, as vits.py's
 * build_2d_sincos_position_embedding: per patch [sin(w·ω), cos(w·ω), sin(h·ω), cos(h·ω)] with
 * ω_d = 1 / temperature^(d / (dim/4)), the grid from meshgrid(arange(w), arange(h)) ('ij', so the first factor
 * runs slowest over the token sequence), and a zero row for the cls token. Computed in float32 as the original.
 */
export function build2dSinCosPositionEmbedding(gridSize: [number, number], dim: number, temperature = 10000): Tensor {
  if (dim % 4) throw new RangeError(`build2dSinCosPositionEmbedding: embed dim ${dim} must be divisible by 4`);
  const [h, w] = gridSize;
  return tidy(() =>
    noGrad(() => {
      const posDim = dim / 4;
      const gridW = arange(0, w, 1, { dtype: 'float32' }).view(w, 1).expand(w, h).flatten();
      const gridH = arange(0, h, 1, { dtype: 'float32' }).view(1, h).expand(w, h).flatten();
      const exponent = arange(0, posDim, 1, { dtype: 'float32' }).div(posDim);
      const omega = zeros([posDim]).add(temperature).pow(exponent).reciprocal();
      const outW = gridW.view(-1, 1).mul(omega.view(1, -1));
      const outH = gridH.view(-1, 1).mul(omega.view(1, -1));
      const pe = cat([outW.sin(), outW.cos(), outH.sin(), outH.cos()], 1).unsqueeze(0);
      return cat([zeros([1, 1, dim]), pe], 1);
    }),
  );
}

export interface ViTOpts {
  /** Input image size (square, or [h, w]). Default 224. */
  imgSize?: Pair;
  /** Patch size. Default 16. */
  patchSize?: Pair;
  /** Input channels. Default 3. */
  inChans?: number;
  /** Token width. Default 768. */
  embedDim?: number;
  /** Transformer blocks. Default 12. */
  depth?: number;
  /** Attention heads. Default 12. */
  numHeads?: number;
  /** MLP hidden width / embedDim. Default 4. */
  mlpRatio?: number;
  /** Bias on the qkv projection. Default true. */
  qkvBias?: boolean;
  /** LayerNorm eps. Default 1e-6 (timm's ViT). */
  normEps?: number;
  /** Output size of a Linear `head`; 0 (default) makes `head` the Identity, so forward returns the features. */
  numClasses?: number;
  /**
   * MoCo v3's `--stop-grad-conv1` ("random patch projection"): the patch projection keeps its xavier-uniform init
   * and is frozen (weight and bias require no grad). Default false.
   */
  stopGradConv1?: boolean;
}

export class VisionTransformer extends Module {
  readonly patch_embed: PatchEmbed;
  readonly blocks: Sequential;
  readonly norm: LayerNorm;
  readonly embedDim: number;
  /** Width of `features()` (= embedDim), what a head on top takes. */
  readonly featureDim: number;
  /** Attention heads per block (not recoverable from the weights' shapes). */
  readonly numHeads: number;
  /** Epsilon of every LayerNorm. */
  readonly normEps: number;

  constructor(readonly opts: ViTOpts = {}) {
    super();
    const dim = opts.embedDim ?? 768;
    const depth = opts.depth ?? 12;
    const numHeads = opts.numHeads ?? 12;
    const eps = opts.normEps ?? 1e-6;
    if (!Number.isInteger(depth) || depth < 1)
      throw new RangeError(`VisionTransformer: depth must be a positive integer, got ${depth}`);
    this.embedDim = dim;
    this.featureDim = dim;
    this.numHeads = numHeads;
    this.normEps = eps;
    this.patch_embed = this.registerModule(
      'patch_embed',
      new PatchEmbed(opts.imgSize ?? 224, opts.patchSize ?? 16, opts.inChans ?? 3, dim),
    );
    this.registerParameter('cls_token', zeros([1, 1, dim]));
    // Fixed, not trained: a buffer, saved under timm's name so checkpoints carry (and load) it.
    this.registerBuffer('pos_embed', build2dSinCosPositionEmbedding(this.patch_embed.gridSize, dim));
    const blocks: Module[] = [];
    for (let i = 0; i < depth; i++)
      blocks.push(new Block(dim, numHeads, opts.mlpRatio ?? 4, opts.qkvBias ?? true, eps));
    this.blocks = this.registerModule('blocks', new Sequential(...blocks));
    this.norm = this.registerModule('norm', new LayerNorm(dim, { eps }));
    const numClasses = opts.numClasses ?? 0;
    this.registerModule('head', numClasses > 0 ? new Linear(dim, numClasses) : new Identity());

    // vits.py's init, after the layers' own (so the random stream is consumed in the same order as PyTorch).
    noGrad(() => {
      for (const [name, m] of this.namedModules()) {
        if (!(m instanceof Linear)) continue;
        if (name.includes('qkv')) {
          // q, k and v are three dim×dim maps: xavier bound of one of them, not of the fused 3·dim×dim matrix.
          const [out, inp] = m.weight.shape as [number, number];
          const bound = Math.sqrt(6 / (Math.floor(out / 3) + inp));
          uniform_(m.weight, -bound, bound);
        } else {
          xavierUniform_(m.weight);
        }
        if (m.bias) zeros_(m.bias);
      }
      normal_(this.clsToken, 0, 1e-6);
      // The patch projection is xavier-uniform over fan_in + fan_out = C·p·p + dim whether or not it is frozen
      // (vits.py hard-codes C = 3).
      const proj = this.patch_embed.proj;
      const [ph, pw] = this.patch_embed.patchSize;
      const bound = Math.sqrt(6 / (3 * ph * pw + dim));
      uniform_(proj.weight, -bound, bound);
      zeros_(proj.bias!);
    });
    if (opts.stopGradConv1) {
      this.patch_embed.proj.weight.requiresGrad_(false);
      this.patch_embed.proj.bias!.requiresGrad_(false);
    }
  }

  get clsToken(): Tensor {
    return this.tensor('cls_token')!;
  }
  /** The fixed position embedding, 1 × (1 + patches) × embedDim (cls slot zeros). */
  get posEmbed(): Tensor {
    return this.tensor('pos_embed')!;
  }

  /** The classifier or projection head (replaceable: MoCo v3 puts its projector MLP here, as the official code does). */
  get head(): Module {
    return this.child('head');
  }

  /** The cls token after the final norm (N × embedDim), before `head`. */
  features(x: Tensor): Tensor {
    const tokens = this.patch_embed.forward(x);
    const cls = this.clsToken.expand(tokens.shape[0]!, -1, -1);
    const y = cat([cls, tokens], 1).add(this.posEmbed);
    return this.norm.forward(this.blocks.forward(y)).select(1, 0);
  }

  /** `head` on the cls-token features (timm's forward_head). */
  forwardHead(features: Tensor): Tensor {
    return this.head.forward(features);
  }

  forward(x: Tensor): Tensor {
    return this.forwardHead(this.features(x));
  }
}

/** Options of the named ViTs: everything but the width and head count, which the name fixes. */
export type ViTFactoryOpts = Omit<ViTOpts, 'embedDim' | 'numHeads'>;

/** ViT-Tiny (timm): 192-d, 12 blocks, 3 heads, patch 16. */
export function vit_tiny(opts: ViTFactoryOpts = {}): VisionTransformer {
  return new VisionTransformer({ patchSize: 16, depth: 12, ...opts, embedDim: 192, numHeads: 3 });
}

/** ViT-Small of MoCo v3: 384-d, 12 blocks, 12 heads (not DeiT's 6), patch 16. */
export function vit_small(opts: ViTFactoryOpts = {}): VisionTransformer {
  return new VisionTransformer({ patchSize: 16, depth: 12, ...opts, embedDim: 384, numHeads: 12 });
}

/** ViT-Base: 768-d, 12 blocks, 12 heads, patch 16. */
export function vit_base(opts: ViTFactoryOpts = {}): VisionTransformer {
  return new VisionTransformer({ patchSize: 16, depth: 12, ...opts, embedDim: 768, numHeads: 12 });
}
