// What a contrastive encoder is to the mechanisms and monitors, whatever its architecture: a ResNet (head slot
// `fc`) or a Vision Transformer (head slot `head`).
import type { Module } from '../nn/index.js';
import type { Tensor } from '../torch/index.js';

export interface Backbone extends Module {
  /** Width of `features()`. */
  readonly featureDim: number;
  /** The backbone's features (N × featureDim): ResNet's pooled output, ViT's final-norm cls token. */
  features(x: Tensor): Tensor;
  /** The head (projector or classifier) on `features()`' output, as timm's forward_head. */
  forwardHead(features: Tensor): Tensor;
  /** forwardHead(features(x)). */
  forward(x: Tensor): Tensor;
}
