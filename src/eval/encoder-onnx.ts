// The ONNX graph of a loaded encoder, ResNet or Vision Transformer: the exporters read the architecture from the
// weights, and what the weights do not say (a ViT's head count and LayerNorm epsilon) comes from the loaded model.
import type { Tensor } from '../torch/index.js';
import { VisionTransformer } from '../models/index.js';
import { buildResNetOnnx, buildViTOnnx, type OnnxExportOptions } from '../models/index.js';
import type { OnnxModel } from '../io/onnx-proto.js';
import type { Encoder } from './encoder.js';

/**
 * Builds `enc`'s ONNX model from `sd` (default: the encoder's own state dict; the export command passes the
 * checkpoint's tensors, which hold a head only when the checkpoint has one). Options as {@link OnnxExportOptions};
 * `bnEps` applies to ResNets only.
 */
export function encoderOnnx(
  enc: Encoder,
  opts: OnnxExportOptions = {},
  sd: Map<string, Tensor> = enc.model.stateDict(),
): OnnxModel {
  const m = enc.model;
  if (m instanceof VisionTransformer) return buildViTOnnx(sd, { ...opts, numHeads: m.numHeads, normEps: m.normEps });
  return buildResNetOnnx(sd, opts);
}
