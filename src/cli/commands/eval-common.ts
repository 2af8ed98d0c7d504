// Options and helpers shared by the evaluation commands (lincls, knn, embed, search, serve) and the collection
// commands (index, dedup, cluster, select).
import type { Command } from 'commander';
import { setNumThreads } from '../../torch/index.js';
import type { FeatureKind } from '../../eval/index.js';

/** The embedding flags as commander parses them (see {@link addEmbedOptions}). */
export interface EmbedFlags { pretrained?: string; feature?: string; flip?: boolean; batch?: string; threads?: string }

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
  if (spec.feature !== false) cmd.option('--feature <which>', `${pre}backbone (pooled features) or head (projection output)`, spec.featureDefault ?? 'backbone');
  if (spec.flip !== false && spec.flipDefault) cmd.option('--no-flip', `${pre}do not average each image's features with its mirror image's (default: averaged, so a flipped copy gets the same vector)`);
  else if (spec.flip !== false) cmd.option('--flip', `${pre}average each image's features with its mirror image's (a flipped copy gets the same vector; twice the compute)`, false);
  if (spec.batch !== false) cmd.option('--batch <n>', `${pre}images per forward`, spec.batch ?? '64');
  if (spec.threads !== false) cmd.option('--threads <n>', 'libtorch threads');
  return cmd;
}

/** The parsed embedding settings of {@link addEmbedOptions}' flags (also applies `--threads`). */
export function embedSettings(o: EmbedFlags): { feature: FeatureKind; flip: boolean; batchSize?: number } {
  applyThreads(o.threads);
  return { feature: feature(o.feature ?? 'backbone'), flip: o.flip ?? false, batchSize: int('--batch', o.batch) };
}

/** Parses a positive integer option or fails naming it. */
export function int(name: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer ≥ ${min}, got '${v}'`);
  return n;
}

/** Parses a finite number option. */
export function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}: expected a number, got '${v}'`);
  return n;
}

/** `--feature backbone|head`: pooled backbone features or the projection head's output. */
export function feature(v: string): FeatureKind {
  if (v !== 'backbone' && v !== 'head') throw new Error(`--feature must be backbone or head, got '${v}'`);
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
