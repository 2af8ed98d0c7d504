// The pieces every ONNX exporter of ours builds its graph from: a graph builder that keeps torch names readable,
// attributes, a Linear as Gemm, F.normalize, the options and opset range the exporters share, and the model around
// the graph (inputs, outputs, metadata) with its atomic write.
import { writeTextAtomic } from './atomic.js';
import {
  encodeModel,
  OnnxAttrType,
  OnnxDataType,
  type OnnxAttribute,
  type OnnxDim,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from './onnx-proto.js';
import type { Tensor } from '../torch/index.js';

/** Options of the ONNX exporters (models/resnet-onnx.ts, models/vit-onnx.ts). */
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

/** `sd[k]`, or an error naming the missing tensor. */
export function stateTensor(sd: Map<string, Tensor>, k: string): Tensor {
  const t = sd.get(k);
  if (!t) throw new Error(`ONNX export: state dict lacks '${k}'`);
  return t;
}

/** Builds nodes and initialisers; keeps names readable (`layer1.0.conv1`). */
export class GraphBuilder {
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

export const ints = (name: string, v: number[]): OnnxAttribute => ({ name, type: OnnxAttrType.INTS, ints: v });
export const int = (name: string, v: number): OnnxAttribute => ({ name, type: OnnxAttrType.INT, i: v });

/** A Linear layer on N × in rows: Gemm with the weight transposed. */
export function linear(g: GraphBuilder, sd: Map<string, Tensor>, x: string, name: string): string {
  g.init(`${name}.weight`, stateTensor(sd, `${name}.weight`));
  g.init(`${name}.bias`, stateTensor(sd, `${name}.bias`));
  return g.node('Gemm', [x, `${name}.weight`, `${name}.bias`], name, [int('transB', 1)]);
}

/** The opset of `opts` (default 17), checked against the range the exporters write. */
export function exportOpset(opts: OnnxExportOptions): number {
  const opset = opts.opset ?? 17;
  if (!Number.isInteger(opset) || opset < 13 || opset > 21)
    throw new Error(`ONNX export: opset ${opset} not supported (13…21)`);
  return opset;
}

/**
 * F.normalize over dim 1 of an N × D value: x / max(‖x‖₂, 1e-12), its nodes and constants named `name`.*.
 * ReduceL2 takes axes as an attribute up to opset 17, as an input after.
 */
export function l2Normalize(g: GraphBuilder, x: string, opset: number, name = 'norm'): string {
  let norm: string;
  if (opset >= 18) {
    g.inits.push({ name: `${name}.axes`, dims: [1], dataType: OnnxDataType.INT64, int64Data: [1] });
    norm = g.node('ReduceL2', [x, `${name}.axes`], `${name}.l2`, [int('keepdims', 1)]);
  } else {
    norm = g.node('ReduceL2', [x], `${name}.l2`, [ints('axes', [1]), int('keepdims', 1)]);
  }
  const clamp = g.node('Max', [norm, g.scalar(`${name}.eps`, 1e-12)], `${name}.clamp`);
  return g.node('Div', [x, clamp], `${name}.div`);
}

/** What an exporter says of its finished graph for {@link onnxModel}. */
export interface OnnxGraphSpec {
  /** The graph's name (`moco_resnet`). */
  name: string;
  /** The model's doc string. */
  docString: string;
  /** The value the graph ends in; written out as `embedding` (with the head) or `features`. */
  output: string;
  /** Its width (the second dimension of the N × D output). */
  outDim: number;
  /** The input's height and width: fixed sides, or symbolic ones. */
  inputSides: [OnnxDim, OnnxDim];
  /** Written into metadata_props before `opts.metadata` (which may override). */
  metadata: Record<string, string>;
}

/**
 * The ModelProto around graph `g`: one float input `input` (N × 3 × H × W), one output (N × D) named `embedding`
 * when `opts.head` and `features` otherwise, N symbolic unless `opts.dynamicBatch` is false, the IR version the
 * opset needs, producer moco-ts.
 */
export function onnxModel(g: GraphBuilder, spec: OnnxGraphSpec, opts: OnnxExportOptions, opset: number): OnnxModel {
  const outName = opts.head ? 'embedding' : 'features';
  g.nodes.push({ opType: 'Identity', input: [spec.output], output: [outName], name: 'output', attribute: [] });
  const batch: OnnxDim = (opts.dynamicBatch ?? true) ? { dimParam: 'batch' } : { dimValue: opts.batchSize ?? 1 };
  const meta = { ...spec.metadata, ...opts.metadata };
  const tensor = (dim: OnnxDim[]) => ({ tensorType: { elemType: OnnxDataType.FLOAT, shape: { dim } } });
  return {
    // The IR version released beside the opset: 8 with opsets 15–18, 9 from 19 (ONNX 1.14).
    irVersion: opset >= 19 ? 9 : 8,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'moco-ts',
    producerVersion: '0.1.0',
    docString: spec.docString,
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
    graph: {
      name: spec.name,
      node: g.nodes,
      initializer: g.inits,
      input: [{ name: 'input', type: tensor([batch, { dimValue: 3 }, ...spec.inputSides]) }],
      output: [{ name: outName, type: tensor([batch, { dimValue: spec.outDim }]) }],
    },
  };
}

/** Writes `model` to `path` atomically. Returns the file size in bytes. */
export function writeOnnx(path: string, model: OnnxModel): number {
  const bytes = encodeModel(model);
  writeTextAtomic(path, bytes);
  return bytes.byteLength;
}
