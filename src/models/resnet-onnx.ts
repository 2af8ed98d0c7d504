// ONNX export of a torchvision-layout ResNet for inference: the architecture is read from the state dict by
// inferResNet (resnet-shape.ts), BatchNorm is folded into the preceding convolution, and the graph optionally
// ends in the projection head (fc or MLP) and L2 normalisation as MoCo's query encoder does.
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
import type { OnnxModel } from '../io/onnx-proto.js';
import { Tensor, tidy } from '../torch/index.js';
import { inferResNet } from './resnet-shape.js';

export type { OnnxExportOptions } from '../io/onnx-graph.js';

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

/**
 * Builds the ONNX model of a torchvision-layout ResNet state dict (backbone names, plus `fc.*` when
 * `head`). Input `input` [N, 3, H, W] float32 (H, W symbolic); output `features` [N, D] (backbone) or
 * `embedding` [N, dim] (with the head).
 */
export function buildResNetOnnx(sd: Map<string, Tensor>, opts: OnnxExportOptions = {}): OnnxModel {
  const s = inferResNet(sd);
  const eps = opts.bnEps ?? 1e-5;
  const opset = exportOpset(opts);
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
  if (opts.normalize ?? true) x = l2Normalize(g, x, opset);
  return onnxModel(
    g,
    {
      name: 'moco_resnet',
      docString: 'ResNet backbone exported by moco-ts (BatchNorm folded into convolutions)',
      output: x,
      outDim,
      inputSides: [{ dimParam: 'height' }, { dimParam: 'width' }],
      metadata: {
        arch: `resnet(${s.block}, [${s.layers.join(',')}])`,
        stem: s.cifarStem ? 'cifar' : 'imagenet',
        head: opts.head ? s.head : 'none',
        normalized: String(opts.normalize ?? true),
      },
    },
    opts,
    opset,
  );
}

/** Groups of the 3×3 convolutions: its input channels (conv1's outputs) over its weight's input channels. */
function group(sd: Map<string, Tensor>): number {
  return get(sd, 'layer1.0.conv1.weight').shape[0]! / get(sd, 'layer1.0.conv2.weight').shape[1]!;
}

/** Writes `buildResNetOnnx(sd, opts)` to `path` atomically. Returns the file size in bytes. */
export function exportResNetOnnx(path: string, sd: Map<string, Tensor>, opts: OnnxExportOptions = {}): number {
  return writeOnnx(path, buildResNetOnnx(sd, opts));
}
