// ResNets laid out exactly as torchvision's models/resnet.py (v1.5: stride in the 3×3 conv), so that
// torchvision and official MoCo state dicts load by name. Adds the CIFAR stem and a width multiplier.
import { F, Tensor, noGrad } from '../torch/index.js';
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, Module, ReLU, Sequential } from '../nn/index.js';
import { constant_, kaimingNormal_ } from '../nn/init.js';

/** Builds the normalisation layer for a channel count (BatchNorm2d, or SplitBatchNorm2d for ShuffleBN emulation). */
export type NormLayer = (channels: number) => BatchNorm2d;

const defaultNorm: NormLayer = (c) => new BatchNorm2d(c);

function conv3x3(inPlanes: number, outPlanes: number, stride = 1): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false });
}

function conv1x1(inPlanes: number, outPlanes: number, stride = 1): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 1, { stride, bias: false });
}

interface Block extends Module {
  /** The last BN of the residual branch (zero-initialised with zeroInitResidual). */
  readonly lastBn: BatchNorm2d;
}

export class BasicBlock extends Module implements Block {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu: ReLU;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Sequential | null;

  constructor(inPlanes: number, planes: number, stride: number, downsample: Sequential | null, norm: NormLayer) {
    super();
    this.conv1 = this.registerModule('conv1', conv3x3(inPlanes, planes, stride));
    this.bn1 = this.registerModule('bn1', norm(planes));
    this.relu = this.registerModule('relu', new ReLU(true));
    this.conv2 = this.registerModule('conv2', conv3x3(planes, planes));
    this.bn2 = this.registerModule('bn2', norm(planes));
    this.downsample = downsample ? this.registerModule('downsample', downsample) : null;
  }

  get lastBn(): BatchNorm2d {
    return this.bn2;
  }

  forward(x: Tensor): Tensor {
    const identity = this.downsample ? this.downsample.forward(x) : x;
    let out = this.relu.forward(this.bn1.forward(this.conv1.forward(x)));
    out = this.bn2.forward(this.conv2.forward(out));
    return F.relu(out.add_(identity), true);
  }
}

export class Bottleneck extends Module implements Block {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly relu: ReLU;
  readonly downsample: Sequential | null;

  constructor(inPlanes: number, planes: number, stride: number, downsample: Sequential | null, norm: NormLayer) {
    super();
    this.conv1 = this.registerModule('conv1', conv1x1(inPlanes, planes));
    this.bn1 = this.registerModule('bn1', norm(planes));
    this.conv2 = this.registerModule('conv2', conv3x3(planes, planes, stride));
    this.bn2 = this.registerModule('bn2', norm(planes));
    this.conv3 = this.registerModule('conv3', conv1x1(planes, planes * Bottleneck.expansion));
    this.bn3 = this.registerModule('bn3', norm(planes * Bottleneck.expansion));
    this.relu = this.registerModule('relu', new ReLU(true));
    this.downsample = downsample ? this.registerModule('downsample', downsample) : null;
  }

  get lastBn(): BatchNorm2d {
    return this.bn3;
  }

  forward(x: Tensor): Tensor {
    const identity = this.downsample ? this.downsample.forward(x) : x;
    let out = this.relu.forward(this.bn1.forward(this.conv1.forward(x)));
    out = this.relu.forward(this.bn2.forward(this.conv2.forward(out)));
    out = this.bn3.forward(this.conv3.forward(out));
    return F.relu(out.add_(identity), true);
  }
}

type BlockClass = (typeof BasicBlock | typeof Bottleneck) & { expansion: number };

export interface ResNetOpts {
  /** Output size of `fc` (MoCo: the feature dim, 128). Default 1000. */
  numClasses?: number;
  /** Zero-init the last BN of each residual branch. Default false. */
  zeroInitResidual?: boolean;
  /** Normalisation layer factory. Default BatchNorm2d. */
  normLayer?: NormLayer;
  /**
   * 3×3 stride-1 conv1 and no max-pool, for 32×32 inputs (CIFAR), as the official CIFAR-10 demo builds it: that
   * conv1 keeps nn.Conv2d's default init (every other conv is torchvision's kaiming-normal fan_out). Default false.
   */
  cifarStem?: boolean;
  /** Channels of the first stage; stages are width·(1, 2, 4, 8). Default 64 (torchvision). */
  width?: number;
}

export class ResNet extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu: ReLU;
  readonly maxpool: MaxPool2d | null;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly avgpool: AdaptiveAvgPool2d;
  /** Channels entering `fc` (512·expansion at width 64). */
  readonly featureDim: number;
  private inPlanes: number;

  constructor(
    block: BlockClass,
    layers: [number, number, number, number],
    readonly opts: ResNetOpts = {},
  ) {
    super();
    const norm = opts.normLayer ?? defaultNorm;
    const w = opts.width ?? 64;
    if (!Number.isInteger(w) || w < 1) throw new RangeError(`ResNet: width must be a positive integer, got ${w}`);
    this.inPlanes = w;
    this.conv1 = this.registerModule(
      'conv1',
      opts.cifarStem
        ? new Conv2d(3, w, 3, { stride: 1, padding: 1, bias: false })
        : new Conv2d(3, w, 7, { stride: 2, padding: 3, bias: false }),
    );
    this.bn1 = this.registerModule('bn1', norm(w));
    this.relu = this.registerModule('relu', new ReLU(true));
    this.maxpool = opts.cifarStem ? null : this.registerModule('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    this.layer1 = this.registerModule('layer1', this.makeLayer(block, w, layers[0], 1, norm));
    this.layer2 = this.registerModule('layer2', this.makeLayer(block, w * 2, layers[1], 2, norm));
    this.layer3 = this.registerModule('layer3', this.makeLayer(block, w * 4, layers[2], 2, norm));
    this.layer4 = this.registerModule('layer4', this.makeLayer(block, w * 8, layers[3], 2, norm));
    this.avgpool = this.registerModule('avgpool', new AdaptiveAvgPool2d(1));
    this.featureDim = w * 8 * block.expansion;
    this.registerModule('fc', new Linear(this.featureDim, opts.numClasses ?? 1000));

    noGrad(() => {
      for (const [, m] of this.namedModules()) {
        // The CIFAR demo's ModelBase swaps a fresh nn.Conv2d in for conv1 after torchvision's init loop, so that
        // stem keeps Conv2d's own kaiming_uniform(a=√5) init.
        if (m instanceof Conv2d && !(opts.cifarStem && m === this.conv1))
          kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
        else if (m instanceof BatchNorm2d) {
          constant_(m.weight, 1);
          constant_(m.bias, 0);
        }
      }
      if (opts.zeroInitResidual) {
        for (const [, m] of this.namedModules())
          if (m instanceof BasicBlock || m instanceof Bottleneck) constant_(m.lastBn.weight, 0);
      }
    });
  }

  /** The classifier or projection head (replaceable: MoCo puts its MLP here, as the official code does). */
  get fc(): Module {
    return this.child('fc');
  }

  private makeLayer(block: BlockClass, planes: number, blocks: number, stride: number, norm: NormLayer): Sequential {
    let downsample: Sequential | null = null;
    if (stride !== 1 || this.inPlanes !== planes * block.expansion) {
      downsample = new Sequential(
        conv1x1(this.inPlanes, planes * block.expansion, stride),
        norm(planes * block.expansion),
      );
    }
    const layers: Module[] = [new block(this.inPlanes, planes, stride, downsample, norm)];
    this.inPlanes = planes * block.expansion;
    for (let i = 1; i < blocks; i++) layers.push(new block(this.inPlanes, planes, 1, null, norm));
    return new Sequential(...layers);
  }

  /** Pooled backbone features (N × featureDim), before `fc`. */
  features(x: Tensor): Tensor {
    let y = this.relu.forward(this.bn1.forward(this.conv1.forward(x)));
    if (this.maxpool) y = this.maxpool.forward(y);
    y = this.layer4.forward(this.layer3.forward(this.layer2.forward(this.layer1.forward(y))));
    return this.avgpool.forward(y).flatten(1);
  }

  /** `fc` on pooled features (timm's forward_head). */
  forwardHead(features: Tensor): Tensor {
    return this.fc.forward(features);
  }

  forward(x: Tensor): Tensor {
    return this.forwardHead(this.features(x));
  }
}

export function resnet18(opts: ResNetOpts = {}): ResNet {
  return new ResNet(BasicBlock, [2, 2, 2, 2], opts);
}
export function resnet34(opts: ResNetOpts = {}): ResNet {
  return new ResNet(BasicBlock, [3, 4, 6, 3], opts);
}
export function resnet50(opts: ResNetOpts = {}): ResNet {
  return new ResNet(Bottleneck, [3, 4, 6, 3], opts);
}
export function resnet101(opts: ResNetOpts = {}): ResNet {
  return new ResNet(Bottleneck, [3, 4, 23, 3], opts);
}
