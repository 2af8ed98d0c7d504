// Weight initialisations with PyTorch's definitions (torch.nn.init), drawing from libtorch's default generator.
import { Tensor, noGrad } from '../torch/index.js';

/** fan_in and fan_out of a weight (out, in, *kernel) as torch.nn.init._calculate_fan_in_and_fan_out. */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  const s = t.shape;
  if (s.length < 2) throw new Error(`init: fan in/out need a tensor of at least 2 dimensions, got [${s.join(', ')}]`);
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: s[1]! * receptive, fanOut: s[0]! * receptive };
}

export function calculateGain(nonlinearity: 'relu' | 'linear' | 'leaky_relu', param = 0.01): number {
  if (nonlinearity === 'relu') return Math.SQRT2;
  if (nonlinearity === 'leaky_relu') return Math.sqrt(2 / (1 + param * param));
  return 1;
}

export function uniform_(t: Tensor, a: number, b: number): Tensor {
  return noGrad(() => t.uniform_(a, b));
}
export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => t.normal_(mean, std));
}
export function constant_(t: Tensor, v: number): Tensor {
  return noGrad(() => t.fill_(v));
}
export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}
export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

export interface KaimingOpts {
  /** Negative slope for leaky_relu; default 0. */
  a?: number;
  /** Default 'fan_in'. */
  mode?: 'fan_in' | 'fan_out';
  /** Default 'leaky_relu'. */
  nonlinearity?: 'relu' | 'leaky_relu' | 'linear';
}

function kaimingStd(t: Tensor, o: KaimingOpts): number {
  const { fanIn, fanOut } = fans(t);
  const gain = calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0);
  return gain / Math.sqrt((o.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut);
}

export function kaimingNormal_(t: Tensor, o: KaimingOpts = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, o));
}
export function kaimingUniform_(t: Tensor, o: KaimingOpts = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, o);
  return uniform_(t, -bound, bound);
}

/** U(±gain·√(6 / (fan_in + fan_out))), as torch.nn.init.xavier_uniform_. */
export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const { fanIn, fanOut } = fans(t);
  // √3·std with std = gain·√(2 / (fan_in + fan_out)), in PyTorch's order of operations: the same bound to the bit.
  const bound = Math.sqrt(3) * (gain * Math.sqrt(2 / (fanIn + fanOut)));
  return uniform_(t, -bound, bound);
}
