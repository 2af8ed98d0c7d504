// ONNX export of a torchvision-layout ResNet for inference: the architecture is read from the state dict by
// inferResNet (resnet-shape.ts), BatchNorm is folded into the preceding convolution, and the graph optionally
// ends in the projection head (fc or MLP) and L2 normalisation as MoCo's query encoder does.
import { writeTextAtomic } from '../io/atomic.js';
import {
  encodeModel,
  OnnxAttrType,
  OnnxDataType,
  type OnnxAttribute,
  type OnnxDim,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from '../io/onnx-proto.js';
import { Tensor, tidy } from '../torch/index.js';
import { inferResNet } from './resnet-shape.js';

/** Options of {@link buildResNetOnnx} and {@link exportResNetOnnx}. */
export interface OnnxExportOptions {
  /** End with the projection head (`fc.*` tensors: one Linear, or Linear–ReLU–Linear); default false. */
  head?: boolean;
  /** L2-normalise the output over dim 1, as F.normalize (eps 1e-12); default true. */
  normalize?: boolean;
  /** ONNX operator set; 13…21 (the ops used are unchanged across them); default 17. */
  opset?: number;
  /** Symbolic batch dimension; default true. When false the batch is fixed to `batchSize`. */
  dynamicBatch?: boolean;
  /** Batch size of the input when not dynamic; default 1. */
  batchSize?: number;
  /** BatchNorm epsilon; default 1e-5 (torchvision). */
  bnEps?: number;
  /** Written into the model's metadata_props. */
  metadata?: Record<string, string>;
}

function get(sd: Map<string, Tensor>, k: string): Tensor {
  const t = sd.get(k);
  if (!t) throw new Error(`ONNX export: state dict lacks '${k}'`);
  return t;
}

/** Builds nodes and initialisers; keeps names readable (`layer1.0.conv1`). */
class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly inits: OnnxTensor[] = [];
  private n = 0;

  init(name: string, t: Tensor): string {
    const f = t.dtype === 'float32' ? t.contiguous() : t.to('float32');
    const d = f.data() as Float32Array;
    f.dispose();
    this.inits.push({
      name,
      dims: t.shape,
      dataType: OnnxDataType.FLOAT,
      rawData: new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
    });
    return name;
  }

  scalar(name: string, v: number): string {
    const b = new Float32Array([v]);
    this.inits.push({ name, dims: [], dataType: OnnxDataType.FLOAT, rawData: new Uint8Array(b.buffer) });
    return name;
  }

  node(opType: string, input: string[], name: string, attribute: OnnxAttribute[] = []): string {
    const out = `${name}:${this.n++}`;
    this.nodes.push({ opType, input, output: [out], name, attribute });
    return out;
  }
}

const ints = (name: string, v: number[]): OnnxAttribute => ({ name, type: OnnxAttrType.INTS, ints: v });
const int = (name: string, v: number): OnnxAttribute => ({ name, type: OnnxAttrType.INT, i: v });

/**
 * Conv + BN folded: w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε), computed in float64.
 */
function convBn(
  g: GraphBuilder,
  sd: Map<string, Tensor>,
  x: string,
  conv: string,
  bn: string,
  stride: number,
  eps: number,
): string {
  const [w, b] = tidy(() => {
    const w0 = get(sd, `${conv}.weight`).double();
    const scale = get(sd, `${bn}.weight`)
      .double()
      .div(get(sd, `${bn}.running_var`).double().add(eps).sqrt());
    const w1 = w0.mul(scale.reshape(-1, 1, 1, 1)).float();
    const cb = sd.get(`${conv}.bias`);
    const mean = get(sd, `${bn}.running_mean`).double();
    const b1 = get(sd, `${bn}.bias`)
      .double()
      .add((cb ? cb.double().sub(mean) : mean.neg()).mul(scale))
      .float();
    return [w1, b1];
  });
  const k = w.shape[2]!;
  g.init(`${conv}.weight`, w);
  g.init(`${conv}.bias`, b);
  w.dispose();
  b.dispose();
  const pad = Math.floor(k / 2);
  return g.node('Conv', [x, `${conv}.weight`, `${conv}.bias`], conv, [
    ints('kernel_shape', [k, k]),
    ints('strides', [stride, stride]),
    ints('pads', [pad, pad, pad, pad]),
    ints('dilations', [1, 1]),
    int('group', 1),
  ]);
}

function linear(g: GraphBuilder, sd: Map<string, Tensor>, x: string, name: string): string {
  g.init(`${name}.weight`, get(sd, `${name}.weight`));
  g.init(`${name}.bias`, get(sd, `${name}.bias`));
  return g.node('Gemm', [x, `${name}.weight`, `${name}.bias`], name, [int('transB', 1)]);
}

/**
 * Builds the ONNX model of a torchvision-layout ResNet state dict (backbone names, plus `fc.*` when
 * `head`). Input `input` [N, 3, H, W] float32 (H, W symbolic); output `features` [N, D] (backbone) or
 * `embedding` [N, dim] (with the head).
 */
export function buildResNetOnnx(sd: Map<string, Tensor>, opts: OnnxExportOptions = {}): OnnxModel {
  const s = inferResNet(sd);
  const eps = opts.bnEps ?? 1e-5;
  const opset = opts.opset ?? 17;
  if (opset < 13 || opset > 21) throw new Error(`ONNX export: opset ${opset} not supported (13…21)`);
  if (opts.head && s.head === 'none')
    throw new Error('ONNX export: --head asked for, but the weights have no fc.* head');
  if (group(sd) !== 1) throw new Error('ONNX export: grouped convolutions (ResNeXt) are not supported');
  const g = new GraphBuilder();
  let x = convBn(g, sd, 'input', 'conv1', 'bn1', s.cifarStem ? 1 : 2, eps);
  x = g.node('Relu', [x], 'relu');
  if (!s.cifarStem)
    x = g.node('MaxPool', [x], 'maxpool', [
      ints('kernel_shape', [3, 3]),
      ints('strides', [2, 2]),
      ints('pads', [1, 1, 1, 1]),
    ]);
  for (let l = 1; l <= 4; l++) {
    for (let j = 0; j < s.layers[l - 1]!; j++) {
      const p = `layer${l}.${j}`;
      const stride = l > 1 && j === 0 ? 2 : 1;
      let y: string;
      if (s.block === 'basic') {
        y = g.node('Relu', [convBn(g, sd, x, `${p}.conv1`, `${p}.bn1`, stride, eps)], `${p}.relu1`);
        y = convBn(g, sd, y, `${p}.conv2`, `${p}.bn2`, 1, eps);
      } else {
        // torchvision ResNet v1.5: the stride sits on the 3×3 convolution.
        y = g.node('Relu', [convBn(g, sd, x, `${p}.conv1`, `${p}.bn1`, 1, eps)], `${p}.relu1`);
        y = g.node('Relu', [convBn(g, sd, y, `${p}.conv2`, `${p}.bn2`, stride, eps)], `${p}.relu2`);
        y = convBn(g, sd, y, `${p}.conv3`, `${p}.bn3`, 1, eps);
      }
      const idn = sd.has(`${p}.downsample.0.weight`)
        ? convBn(g, sd, x, `${p}.downsample.0`, `${p}.downsample.1`, stride, eps)
        : x;
      x = g.node('Relu', [g.node('Add', [y, idn], `${p}.add`)], `${p}.relu`);
    }
  }
  x = g.node('Flatten', [g.node('GlobalAveragePool', [x], 'avgpool')], 'flatten', [int('axis', 1)]);
  let outDim = s.featureDim;
  if (opts.head) {
    if (s.head === 'mlp') {
      x = g.node('Relu', [linear(g, sd, x, 'fc.0')], 'fc.1');
      x = linear(g, sd, x, 'fc.2');
      outDim = get(sd, 'fc.2.weight').shape[0]!;
    } else {
      x = linear(g, sd, x, 'fc');
      outDim = get(sd, 'fc.weight').shape[0]!;
    }
  }
  if (opts.normalize ?? true) {
    // F.normalize: x / max(‖x‖₂, 1e-12). ReduceL2 takes axes as an attribute up to opset 17, as an input after.
    let norm: string;
    if (opset >= 18) {
      g.inits.push({ name: 'norm.axes', dims: [1], dataType: OnnxDataType.INT64, int64Data: [1] });
      norm = g.node('ReduceL2', [x, 'norm.axes'], 'norm.l2', [int('keepdims', 1)]);
    } else {
      norm = g.node('ReduceL2', [x], 'norm.l2', [ints('axes', [1]), int('keepdims', 1)]);
    }
    x = g.node('Div', [x, g.node('Max', [norm, g.scalar('norm.eps', 1e-12)], 'norm.clamp')], 'norm.div');
  }
  const outName = opts.head ? 'embedding' : 'features';
  g.nodes.push({ opType: 'Identity', input: [x], output: [outName], name: 'output', attribute: [] });
  const batch: OnnxDim = (opts.dynamicBatch ?? true) ? { dimParam: 'batch' } : { dimValue: opts.batchSize ?? 1 };
  const meta = {
    arch: `resnet(${s.block}, [${s.layers.join(',')}])`,
    stem: s.cifarStem ? 'cifar' : 'imagenet',
    head: opts.head ? s.head : 'none',
    normalized: String(opts.normalize ?? true),
    ...opts.metadata,
  };
  return {
    irVersion: opset >= 19 ? 9 : 8,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'moco-ts',
    producerVersion: '0.1.0',
    docString: 'ResNet backbone exported by moco-ts (BatchNorm folded into convolutions)',
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
    graph: {
      name: 'moco_resnet',
      node: g.nodes,
      initializer: g.inits,
      input: [
        {
          name: 'input',
          type: {
            tensorType: {
              elemType: OnnxDataType.FLOAT,
              shape: { dim: [batch, { dimValue: 3 }, { dimParam: 'height' }, { dimParam: 'width' }] },
            },
          },
        },
      ],
      output: [
        {
          name: outName,
          type: { tensorType: { elemType: OnnxDataType.FLOAT, shape: { dim: [batch, { dimValue: outDim }] } } },
        },
      ],
    },
  };
}

/** Groups of the 3×3 convolutions: its input channels (conv1's outputs) over its weight's input channels. */
function group(sd: Map<string, Tensor>): number {
  return get(sd, 'layer1.0.conv1.weight').shape[0]! / get(sd, 'layer1.0.conv2.weight').shape[1]!;
}

/** Writes `buildResNetOnnx(sd, opts)` to `path` atomically. Returns the file size in bytes. */
export function exportResNetOnnx(path: string, sd: Map<string, Tensor>, opts: OnnxExportOptions = {}): number {
  const bytes = encodeModel(buildResNetOnnx(sd, opts));
  writeTextAtomic(path, bytes);
  return bytes.byteLength;
}
