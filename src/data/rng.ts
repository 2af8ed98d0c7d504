// A small seeded PRNG (xoshiro128**) with serialisable state, for every random choice of the data pipeline.
// Streams are derived by hashing (seed, ...keys) so that, e.g., the augmentation parameters of batch b in
// epoch e depend only on (seed, e, b, rank): a resumed run reproduces its batches without saved RNG state.

/** The four 32-bit words of a generator's state. */
export type RngState = [number, number, number, number];

// splitmix32: turns a 32-bit counter into well-mixed words (seeding xoshiro, hashing keys).
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function hashKeys(keys: readonly (number | string)[]): number {
  let h = 0x2545f491;
  for (const k of keys) {
    if (typeof k === 'string') {
      for (let i = 0; i < k.length; i++) h = mix32(h ^ k.charCodeAt(i));
      h = mix32(h ^ 0xfe);
    } else {
      if (!Number.isFinite(k)) throw new RangeError(`Rng: key must be finite, got ${k}`);
      // Two words so that keys up to 2^53 hash without collisions.
      const lo = k >>> 0;
      const hi = Math.floor(k / 4294967296) >>> 0;
      h = mix32(mix32(h ^ lo) ^ hi);
    }
  }
  return h;
}

/**
 * xoshiro128** generator. All augmentation parameters and shuffles of moco-ts come from here, never from
 * `Math.random`, so runs are reproducible from `--seed`.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  /** A generator for a stream named by `keys` (numbers ≥ 0 or strings), e.g. `new Rng(seed, 'aug', epoch, batch, rank)`. */
  constructor(...keys: (number | string)[]) {
    let h = hashKeys(keys);
    const w: number[] = [];
    for (let i = 0; i < 4; i++) {
      h = mix32(h);
      w.push(h);
    }
    [this.s0, this.s1, this.s2, this.s3] = w as RngState;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Same as `new Rng(...keys)`. */
  static derive(...keys: (number | string)[]): Rng {
    return new Rng(...keys);
  }

  /** A generator restored from {@link state}. */
  static fromState(s: RngState): Rng {
    const r = new Rng(0);
    r.setState(s);
    return r;
  }

  /** The state as four uint32 (JSON-serialisable). A pending Gaussian spare is dropped. */
  state(): RngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  setState(s: RngState): void {
    if (s.length !== 4 || s.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff))
      throw new RangeError('Rng.setState: expected four uint32');
    [this.s0, this.s1, this.s2, this.s3] = s.map((v) => v | 0) as RngState;
    this.spare = null;
  }

  /** Next uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform in [0, 1) with 53 bits. */
  random(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random();
  }

  /** Uniform integer in [lo, hi] inclusive (torch.randint(lo, hi+1) semantics). */
  int(lo: number, hi: number): number {
    const n = hi - lo + 1;
    if (!(n >= 1)) throw new RangeError(`Rng.int: empty range [${lo}, ${hi}]`);
    return lo + Math.floor(this.random() * n);
  }

  /** true with probability p. */
  bernoulli(p: number): boolean {
    return this.random() < p;
  }

  /** Standard normal (Marsaglia polar). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u: number, v: number, s: number;
    do {
      u = 2 * this.random() - 1;
      v = 2 * this.random() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const m = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * m;
    return u * m;
  }

  /** Fisher–Yates shuffle of `a` in place; returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
