// Architectures by name, as `-a/--arch` takes them.
import { resnet18, resnet34, resnet50, resnet101, type ResNet, type ResNetOpts } from './resnet.js';
import { vit_base, vit_small, vit_tiny, type ViTFactoryOpts, type VisionTransformer } from './vit.js';

export const ARCHS: Record<string, (o?: ResNetOpts) => ResNet> = { resnet18, resnet34, resnet50, resnet101 };

export function createModel(arch: string, opts: ResNetOpts = {}): ResNet {
  const f = ARCHS[arch];
  if (!f) throw new Error(`unknown arch '${arch}'; valid: ${Object.keys(ARCHS).join(', ')}`);
  return f(opts);
}

/**
 * The Vision Transformers (MoCo v3), kept apart from ARCHS: the MoCo v1/v2 encoders build a ResNet and swap its
 * `fc`, which a ViT does not have, so `arch in ARCHS` must keep meaning "a ResNet".
 */
export const VIT_ARCHS: Record<string, (o?: ViTFactoryOpts) => VisionTransformer> = { vit_tiny, vit_small, vit_base };

export function createViT(arch: string, opts: ViTFactoryOpts = {}): VisionTransformer {
  const f = VIT_ARCHS[arch];
  if (!f) throw new Error(`unknown ViT arch '${arch}'; valid: ${Object.keys(VIT_ARCHS).join(', ')}`);
  return f(opts);
}
