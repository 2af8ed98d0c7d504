// A functional eval-mode forward of a torchvision-layout ResNet state dict on libtorch (no folding, no
// src/models): the independent libtorch reference the interop tests compare files and ONNX against.
import { F, Tensor, tidy } from '../../src/torch/index.js';

function bn(sd: Map<string, Tensor>, x: Tensor, p: string): Tensor {
  const g = (k: string): Tensor => sd.get(`${p}.${k}`)!;
  return F.batchNorm(x, g('running_mean'), g('running_var'), g('weight'), g('bias'), { training: false });
}

function conv(sd: Map<string, Tensor>, x: Tensor, p: string, stride: number): Tensor {
  const w = sd.get(`${p}.weight`)!;
  return F.conv2d(x, w, null, { stride, padding: Math.floor(w.shape[2]! / 2) });
}

/**
 * Backbone features [N, D] (after global average pooling); with `head`, the L2-normalised head output.
 * `sd` uses torchvision names; the stem is read from conv1's kernel size.
 */
export function resnetForward(sd: Map<string, Tensor>, x: Tensor, opts: { head?: boolean } = {}): Tensor {
  return tidy(() => {
    const cifar = sd.get('conv1.weight')!.shape[2] === 3;
    let h = bn(sd, conv(sd, x, 'conv1', cifar ? 1 : 2), 'bn1').relu();
    if (!cifar) h = F.maxPool2d(h, 3, { stride: 2, padding: 1 });
    const bottleneck = sd.has('layer1.0.conv3.weight');
    for (let l = 1; l <= 4; l++) {
      for (let j = 0; sd.has(`layer${l}.${j}.conv1.weight`); j++) {
        const p = `layer${l}.${j}`;
        const s = l > 1 && j === 0 ? 2 : 1;
        let y: Tensor;
        if (bottleneck) {
          y = bn(sd, conv(sd, h, `${p}.conv1`, 1), `${p}.bn1`).relu();
          y = bn(sd, conv(sd, y, `${p}.conv2`, s), `${p}.bn2`).relu();
          y = bn(sd, conv(sd, y, `${p}.conv3`, 1), `${p}.bn3`);
        } else {
          y = bn(sd, conv(sd, h, `${p}.conv1`, s), `${p}.bn1`).relu();
          y = bn(sd, conv(sd, y, `${p}.conv2`, 1), `${p}.bn2`);
        }
        const idn = sd.has(`${p}.downsample.0.weight`)
          ? bn(sd, conv(sd, h, `${p}.downsample.0`, s), `${p}.downsample.1`)
          : h;
        h = y.add(idn).relu();
      }
    }
    let f = F.adaptiveAvgPool2d(h, 1).flatten(1);
    if (opts.head) {
      if (sd.has('fc.0.weight'))
        f = F.linear(
          F.linear(f, sd.get('fc.0.weight')!, sd.get('fc.0.bias')!).relu(),
          sd.get('fc.2.weight')!,
          sd.get('fc.2.bias')!,
        );
      else f = F.linear(f, sd.get('fc.weight')!, sd.get('fc.bias')!);
      return F.normalize(f, { dim: 1 });
    }
    return f;
  });
}
