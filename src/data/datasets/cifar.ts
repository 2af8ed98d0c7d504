// CIFAR-10/100 from the official binary release, read directly into one uint8 tensor.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor } from '../../torch/index.js';
import { MemoryDataset } from './dataset.js';

export const CIFAR10_CLASSES: readonly string[] = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

export interface CifarOpts {
  /** 10 or 100. Default 10. */
  variant?: 10 | 100;
  /** Training set (50,000) or test set (10,000). Default true. */
  train?: boolean;
}

/** The official binary tarballs (also used by `downloadCifar`). */
export const CIFAR_URL = {
  10: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
  100: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
} as const;
/** The folder each tarball extracts to. */
export const CIFAR_FOLDER = { 10: 'cifar-10-batches-bin', 100: 'cifar-100-binary' } as const;

/**
 * The folder holding a CIFAR release's .bin files: `root/<release folder>` or `root` itself, whichever has `file`
 * (default: the first training file, `data_batch_1.bin` or `train.bin`); null when neither does.
 */
export function findCifarDir(
  root: string,
  variant: 10 | 100,
  file: string = variant === 10 ? 'data_batch_1.bin' : 'train.bin',
): string | null {
  return [join(root, CIFAR_FOLDER[variant]), root].find((d) => existsSync(join(d, file))) ?? null;
}

/** The root and variant of a `cifar10:DIR` / `cifar100:DIR` data spec; null for any other spec. */
export function parseCifarSpec(spec: string): { root: string; variant: 10 | 100 } | null {
  const c = /^cifar(10|100):(.+)$/.exec(spec);
  return c ? { root: c[2]!, variant: c[1] === '10' ? 10 : 100 } : null;
}

/**
 * The binary release of CIFAR (`cifar-10-batches-bin/data_batch_{1..5}.bin`, `test_batch.bin`;
 * `cifar-100-binary/train.bin`, `test.bin`, fine labels). `root` is the extracted folder or its parent.
 * 3,073 (CIFAR-10) or 3,074 (CIFAR-100) bytes a record: label byte(s), then R, G, B planes of 32×32.
 */
export class Cifar extends MemoryDataset {
  constructor(root: string, o: CifarOpts = {}) {
    const variant = o.variant ?? 10;
    const train = o.train ?? true;
    const names =
      variant === 10
        ? train
          ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`)
          : ['test_batch.bin']
        : [train ? 'train.bin' : 'test.bin'];
    const dir = findCifarDir(root, variant, names[0]!);
    if (!dir) {
      throw new Error(
        `CIFAR-${variant}: ${join(root, CIFAR_FOLDER[variant], names[0]!)} not found. Download the binary version from ${CIFAR_URL[variant]} ` +
          `and extract it into ${root} (tar xzf), or run with --download on a machine that is online.`,
      );
    }
    const head = variant === 10 ? 1 : 2;
    const rec = head + 3072;
    const bufs = names.map((f) => {
      const p = join(dir, f);
      if (!existsSync(p)) throw new Error(`CIFAR-${variant}: ${p} missing (incomplete extraction?)`);
      const b = readFileSync(p);
      if (b.length % rec !== 0)
        throw new Error(`CIFAR-${variant}: ${p} has ${b.length} bytes, not a multiple of the ${rec}-byte record`);
      return b;
    });
    const n = bufs.reduce((s, b) => s + b.length / rec, 0);
    const pix = new Uint8Array(n * 3072);
    const labels = new Int32Array(n);
    let k = 0;
    for (const b of bufs) {
      for (let off = 0; off < b.length; off += rec, k++) {
        labels[k] = b[off + head - 1]!; // CIFAR-100: the fine label is the second byte
        pix.set(b.subarray(off + head, off + rec), k * 3072);
      }
    }
    const namesFile = join(dir, variant === 10 ? 'batches.meta.txt' : 'fine_label_names.txt');
    const listed = existsSync(namesFile)
      ? readFileSync(namesFile, 'utf8')
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter(Boolean)
      : [];
    const classes =
      listed.length === variant
        ? listed
        : variant === 10
          ? CIFAR10_CLASSES
          : Array.from({ length: 100 }, (_, i) => `class_${i}`);
    super(
      tensor(pix, { shape: [n, 3, 32, 32], dtype: 'uint8' }),
      labels,
      classes,
      `CIFAR-${variant} ${train ? 'train' : 'test'}`,
    );
  }
}
