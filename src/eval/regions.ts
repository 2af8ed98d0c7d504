// Layout-keeping descriptors from an encoder's feature maps, for near-duplicate search: the global average of
// the last stage's map, plus the averages of its horizontal bands (top and bottom halves with `bands: 2`), plus
// the global average of the stage before (layer3; `layer3: false` leaves it out). Each block is L2-normalised and scaled by
// 1/√blocks before concatenation, so every block weighs the same in a cosine and the whole has norm 1.
// Bands rather than a grid of cells so that flip averaging (`embedImages({ flip: true })`) still gives a mirrored
// copy the same vector: a band's average is unchanged by a horizontal mirror, a cell's is not.
import { F, cat, noGrad, tidy, type Tensor } from '../torch/index.js';
import type { ResNet } from '../models/index.js';

export interface RegionOpts {
  /** Horizontal bands of the last map pooled on their own, besides the global average; default 2 (0: none). */
  bands?: number;
  /** Add the global average of layer3's map; default true. */
  layer3?: boolean;
}

/** Size of the descriptor of `model` with `o`. */
export function regionDim(model: ResNet, o: RegionOpts = {}): number {
  const c4 = model.featureDim;
  const c3 = c4 / 2;
  return c4 * (1 + (o.bands ?? 2)) + ((o.layer3 ?? true) ? c3 : 0);
}

/** The layer3 and layer4 maps of `x` (N × C × H × W each). */
export function stageMaps(model: ResNet, x: Tensor): { layer3: Tensor; layer4: Tensor } {
  return noGrad(() => {
    let y = model.relu.forward(model.bn1.forward(model.conv1.forward(x)));
    if (model.maxpool) y = model.maxpool.forward(y);
    const layer3 = model.layer3.forward(model.layer2.forward(model.layer1.forward(y)));
    return { layer3, layer4: model.layer4.forward(layer3) };
  });
}

/** The descriptor of a batch (N × {@link regionDim}), no grad, eval-mode BN as the model is. */
export function regionFeatures(model: ResNet, x: Tensor, o: RegionOpts = {}): Tensor {
  return tidy(() =>
    noGrad(() => {
      const { layer3, layer4 } = stageMaps(model, x);
      const blocks: Tensor[] = [F.adaptiveAvgPool2d(layer4, 1).flatten(1)];
      const bands = o.bands ?? 2;
      if (bands > 0) {
        const b = F.adaptiveAvgPool2d(layer4, [bands, 1]).flatten(2); // N × C × bands
        for (let i = 0; i < bands; i++) blocks.push(b.select(2, i));
      }
      if (o.layer3 ?? true) blocks.push(F.adaptiveAvgPool2d(layer3, 1).flatten(1));
      const w = 1 / Math.sqrt(blocks.length);
      return cat(
        blocks.map((t) => F.normalize(t, { dim: 1 }).mul(w)),
        1,
      );
    }),
  );
}
