// Architectures by name, as `-a/--arch` takes them.
import { resnet18, resnet34, resnet50, resnet101, type ResNet, type ResNetOpts } from './resnet.js';

export const ARCHS: Record<string, (o?: ResNetOpts) => ResNet> = { resnet18, resnet34, resnet50, resnet101 };

export function createModel(arch: string, opts: ResNetOpts = {}): ResNet {
  const f = ARCHS[arch];
  if (!f) throw new Error(`unknown arch '${arch}'; valid: ${Object.keys(ARCHS).join(', ')}`);
  return f(opts);
}
