// Options and helpers shared by the evaluation commands (lincls, knn, embed, search, serve) and the collection
// commands (index, dedup, cluster, select).
import type { Command } from 'commander';
import { setNumThreads } from '../../torch/index.js';
import type { FeatureKind } from '../../eval/index.js';
import { int } from './flag-numbers.js';

/** The embedding flags as commander parses them (see {@link addEmbedOptions}). */
export interface EmbedFlags {
  pretrained?: string;
  feature?: string;
  flip?: boolean;
  crops?: string;
  batch?: string;
  threads?: string;
}

/** Which embedding flags a command offers, and how they read there. */
export interface EmbedOptionSpec {
  /** `--pretrained` is required (default: optional). */
  required?: boolean;
  /** Help of `--pretrained`. */
  pretrained?: string;
  /** Prefix of every flag's help (e.g. 'libtorch engine: '). */
  prefix?: string;
  /** Offer `--feature` (default true) with this default (default 'backbone'). */
  feature?: boolean;
  featureDefault?: FeatureKind;
  /** Offer `--flip` (default true); with `flipDefault`, flip-averaging is on and `--no-flip` turns it off. */
  flip?: boolean;
  flipDefault?: boolean;
  /** Offer `--crops none|center|five` (default true) with this default (default 'none'). */
  crops?: boolean;
  cropsDefault?: CropKind;
  /** Default of `--batch` (images per forward), or false when the command has a `--batch` of its own. */
  batch?: string | false;
  /** Offer `--threads` for libtorch (default true). */
  threads?: boolean;
}

/**
 * Adds the flags every command that embeds images shares — `--pretrained`, `--feature`, `--flip`, `--batch`,
 * `--threads` — with one wording; {@link embedSettings} reads them back.
 */
export function addEmbedOptions(cmd: Command, spec: EmbedOptionSpec = {}): Command {
  const pre = spec.prefix ?? '';
  const help = spec.pretrained ?? `${pre}checkpoint (run dir, .safetensors, .pth, .pth.tar)`;
  if (spec.required) cmd.requiredOption('--pretrained <ckpt>', help);
  else cmd.option('--pretrained <ckpt>', help);
  if (spec.feature !== false)
    cmd.option(
      '--feature <which>',
      `${pre}backbone (pooled features), head (projection output) or regions (global + banded pooling of the last map, + layer3; for dedup)`,
      spec.featureDefault ?? 'backbone',
    );
  if (spec.flip !== false && spec.flipDefault)
    cmd.option(
      '--no-flip',
      `${pre}do not average each image's features with its mirror image's (default: averaged, so a flipped copy gets the same vector)`,
    );
  else if (spec.flip !== false)
    cmd.option(
      '--flip',
      `${pre}average each image's features with its mirror image's (a flipped copy gets the same vector; twice the compute)`,
      false,
    );
  if (spec.crops !== false)
    cmd.option(
      '--crops <which>',
      `${pre}also average in the features of 90% crops resized back: center (one), five (centre and corners) or none (a cropped copy shares more of its vector; one forward more per crop)`,
      spec.cropsDefault ?? 'none',
    );
  if (spec.batch !== false) cmd.option('--batch <n>', `${pre}images per forward`, spec.batch ?? '64');
  if (spec.threads !== false) cmd.option('--threads <n>', 'libtorch threads');
  return cmd;
}

/** The parsed embedding settings of {@link addEmbedOptions}' flags (also applies `--threads`). */
export function embedSettings(o: EmbedFlags): {
  feature: FeatureKind;
  flip: boolean;
  crops?: { kind: 'center' | 'five' };
  batchSize?: number;
} {
  applyThreads(o.threads);
  const c = cropKind(o.crops ?? 'none');
  return {
    feature: feature(o.feature ?? 'backbone'),
    flip: o.flip ?? false,
    ...(c !== 'none' ? { crops: { kind: c } } : {}),
    batchSize: int('--batch', o.batch),
  };
}

/** What `--crops` takes. */
export type CropKind = 'none' | 'center' | 'five';

/** `--crops none|center|five`. */
export function cropKind(v: string): CropKind {
  if (v !== 'none' && v !== 'center' && v !== 'five')
    throw new Error(`--crops must be none, center or five, got '${v}'`);
  return v;
}

/**
 * `--feature backbone|head|regions`: pooled backbone features, the projection head's output, or the region
 * descriptor (global + banded averages of the last map and layer3's average: `src/eval/regions.ts`).
 */
export function feature(v: string): FeatureKind {
  if (v !== 'backbone' && v !== 'head' && v !== 'regions')
    throw new Error(`--feature must be backbone, head or regions, got '${v}'`);
  return v;
}

/** `--threads N`: libtorch intra-op threads. */
export function applyThreads(v: string | undefined): void {
  const n = int('--threads', v);
  if (n !== undefined) setNumThreads(n);
}

/** A progress reporter on stderr that rewrites one line (only when stderr is a terminal; else every 10%). */
export function progress(label: string): (done: number, total: number) => void {
  let lastPct = -10;
  return (done, total) => {
    const pct = total ? Math.floor((100 * done) / total) : 100;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${label}: ${done}/${total} (${pct}%)${done >= total ? '\n' : ''}`);
    } else if (pct >= lastPct + 10 || done >= total) {
      lastPct = pct;
      process.stderr.write(`${label}: ${done}/${total} (${pct}%)\n`);
    }
  };
}
