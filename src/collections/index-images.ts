// Embeds a folder of images into a collection incrementally: files are compared with the table by size and
// mtime (then by SHA-256), only new or changed ones are embedded, in one stream (decoding overlapped with the
// encoder, see embedImages), and each chunk is committed as soon as it is embedded, in the background while the
// next one is embedded, so an interrupted run loses at most two chunks and the next run resumes where it
// stopped. In a multi-process run each rank takes the files whose path hashes to it, so nothing is embedded twice.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { embedImages, type EmbedOpts, type Encoder, type FeatureKind } from '../eval/index.js';
import type { Found, Skipped } from '../data/walk.js';
import { Collection, idOf, type CollectionMeta, type FileRow, type ImageRow } from './table.js';

export interface IndexImagesOpts {
  feature?: FeatureKind;
  /** Flip-averaged features (see {@link embedImages}). */
  flip?: boolean;
  /** Crop-averaged features (see {@link embedImages}). */
  crops?: EmbedOpts['crops'];
  /** Images per forward; default 64. */
  batchSize?: number;
  /** Images embedded per commit to the table (an interruption loses at most two chunks); default 1024. */
  chunk?: number;
  /** Decoding worker threads (see {@link embedImages}); default its default. */
  workers?: number;
  /** This process's share of a multi-process run; default the whole list. */
  shard?: { rank: number; worldSize: number };
  /** Called after each committed chunk with (files embedded, files to embed). */
  onProgress?: (done: number, total: number) => void;
  onSkip?: (s: Skipped) => void;
}

export interface IndexSummary {
  /** Files of this process's shard. */
  files: number;
  /** Already in the table with the same content. */
  unchanged: number;
  added: number;
  updated: number;
  skipped: Skipped[];
  /** Wall time of the whole call. */
  ms: number;
  /** Its parts: reading the table's file list and the stat/SHA-256 pass over the files. */
  scanMs: number;
  /** Embedding, files to vectors (decode, forward; commits run alongside). */
  embedMs: number;
  /** Waiting for the last commits after the last vector. */
  commitWaitMs: number;
}

/** Which rank of `worldSize` embeds `path` (a hash of the path, the same on every rank and run). */
export function shardOf(path: string, worldSize: number): number {
  return createHash('sha256').update(path).digest().readUInt32BE(0) % worldSize;
}

/** SHA-256 (hex), size and mtime of a file. */
export async function fileFacts(path: string): Promise<{ sha256: string; bytes: number; mtime: number }> {
  const [buf, st] = await Promise.all([readFile(path), stat(path)]);
  return { sha256: createHash('sha256').update(buf).digest('hex'), bytes: st.size, mtime: st.mtimeMs };
}

/**
 * Brings `coll` up to date with `files` (as {@link walkImages} finds them, with their folder label; a plain path
 * has no label; relative paths are stored absolute): new files are appended,
 * changed ones replaced, unchanged ones left alone. Files that cannot be decoded are reported and left out
 * (retried next run).
 */
export async function indexImages(
  encoder: Encoder,
  files: readonly (string | Found)[],
  coll: Collection,
  o: IndexImagesOpts = {},
): Promise<IndexSummary> {
  const t0 = performance.now();
  const world = o.shard?.worldSize ?? 1;
  const rank = o.shard?.rank ?? 0;
  const labels = new Map<string, string | null>();
  for (const f of files)
    labels.set(resolve(typeof f === 'string' ? f : f.path), typeof f === 'string' ? null : f.label);
  const mine = [...labels.keys()].filter((p) => world === 1 || shardOf(p, world) === rank);
  const known = new Map<string, FileRow>();
  for (const r of await coll.files()) known.set(r.path, r);

  let unchanged = 0;
  const todo: { path: string; facts: { sha256: string; bytes: number; mtime: number }; replace: boolean }[] = [];
  const step = 64;
  for (let i = 0; i < mine.length; i += step) {
    await Promise.all(
      mine.slice(i, i + step).map(async (path) => {
        const old = known.get(path);
        const st = await stat(path);
        if (old && old.bytes === st.size && old.mtime === st.mtimeMs) {
          unchanged++;
          return;
        }
        const facts = await fileFacts(path);
        if (old && old.sha256 === facts.sha256) {
          unchanged++;
          return;
        }
        todo.push({ path, facts, replace: old !== undefined });
      }),
    );
  }
  todo.sort((a, b) => (a.path < b.path ? -1 : 1));
  const t1 = performance.now();

  const chunk = o.chunk ?? 1024;
  const skipped: Skipped[] = [];
  let added = 0;
  let updated = 0;
  const byPath = new Map(todo.map((t, k) => [t.path, { ...t, k }]));
  // Rows wait here until a chunk is full; then it is committed while the next one is embedded (one commit at a
  // time, so a failed commit surfaces at the next).
  let rows: ImageRow[] = [];
  let done = 0;
  let committing: Promise<void> = Promise.resolve();
  // The first failed commit. It is held here rather than left in a pending promise (which Node reports as an
  // unhandled rejection, killing the process with LanceDB's raw error) and stops the embedding at the next batch.
  let failed: unknown = null;
  const flush = async (): Promise<void> => {
    const part = rows;
    const at = done;
    rows = [];
    await committing;
    if (failed) return;
    committing = (async () => {
      const fresh = part.filter((r) => !byPath.get(r.path)!.replace);
      const changed = part.filter((r) => byPath.get(r.path)!.replace);
      // Appends never conflict between ranks; replacements (rare) go through a merge on the path.
      await coll.append(fresh);
      added += fresh.length;
      await coll.upsert(changed);
      updated += changed.length;
      o.onProgress?.(at, todo.length);
    })().catch((e: unknown) => {
      failed = e;
    });
  };
  const stopIfFailed = (): void => {
    if (failed) throw commitError(coll.uri, failed, added + updated, todo.length);
  };
  await embedImages(
    encoder,
    todo.map((t) => t.path),
    {
      feature: o.feature,
      flip: o.flip,
      crops: o.crops,
      batchSize: o.batchSize,
      workers: o.workers,
      onSkip: (s) => {
        skipped.push(s);
        o.onSkip?.(s);
      },
      onProgress: (n) => {
        done = n;
      },
      writer: {
        add: async (vectors, paths) => {
          stopIfFailed();
          const dim = paths.length ? vectors.length / paths.length : 0;
          paths.forEach((p, j) => {
            const t = byPath.get(p)!;
            rows.push({
              id: idOf(p),
              path: p,
              label: labels.get(p) ?? null,
              ...t.facts,
              vector: vectors.slice(j * dim, (j + 1) * dim),
            });
          });
          // `done` is the count before this batch (onProgress follows add): files up to this batch's last.
          if (paths.length) done = Math.max(done, byPath.get(paths[paths.length - 1]!)!.k + 1);
          if (rows.length >= chunk) await flush();
        },
      },
    },
  );
  const t2 = performance.now();
  done = todo.length;
  stopIfFailed();
  if (todo.length) await flush();
  await committing;
  stopIfFailed();
  const t3 = performance.now();
  return {
    files: mine.length,
    unchanged,
    added,
    updated,
    skipped,
    ms: t3 - t0,
    scanMs: t1 - t0,
    embedMs: t2 - t1,
    commitWaitMs: t3 - t2,
  };
}

/**
 * The error of a failed commit (a full disk, a lost mount): it names the collection, what this run committed
 * and how to go on. A LanceDB commit is atomic (data files first, then the version that points at them), so the
 * table holds exactly the committed rows, and a rerun embeds only the files not yet in it.
 */
export function commitError(uri: string, e: unknown, committed: number, total: number): Error {
  return new Error(
    `--db ${uri}: writing to the collection failed (${rootCause(e)}) after this run had committed ${committed} of its ${total} files; ` +
      `those ${committed} rows and all earlier ones are intact. Free space or fix the cause, then rerun the same \`moco index\` command to resume: it embeds only the files not yet in the collection`,
    { cause: e },
  );
}

/**
 * The innermost reason of a LanceDB error, without its Rust source locations: its messages nest each layer
 * ("lance error: LanceError(IO): … Caused by: … Caused by: No space left on device (os error 28)").
 */
export function rootCause(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const last = msg
    .split(/\s*Caused by:\s*/)
    .pop()!
    .trim();
  return (
    last
      .replace(/,\s*\S+\.rs:\d+:\d+/g, '')
      .split('\n')[0]!
      .trim() || msg.split('\n')[0]!
  );
}

/**
 * How the vectors `want` describes would differ from those a collection recorded (`have`), one phrase each, with
 * the flag that matches the collection where there is one; empty when they are comparable. The encoder is
 * compared by its weights' digest when both record one.
 */
export function encodingDifferences(have: CollectionMeta, want: CollectionMeta): string[] {
  const out: string[] = [];
  const short = (h: string): string => h.slice(0, 12);
  if (have.encoderSha256 && want.encoderSha256 && have.encoderSha256 !== want.encoderSha256) {
    out.push(
      `its vectors were made by the encoder ${have.pretrained ?? '(path not recorded)'} (weights sha256 ${short(have.encoderSha256)}…), this one is ${want.pretrained ?? '(unknown)'} (weights sha256 ${short(want.encoderSha256)}…)`,
    );
  }
  if (have.dim !== want.dim) out.push(`it holds ${have.dim}-d vectors, this encoder gives ${want.dim}-d`);
  const hf = have.feature ?? 'backbone',
    wf = want.feature ?? 'backbone';
  if (have.feature && hf !== wf)
    out.push(`it holds --feature ${hf} vectors, this run asks for ${wf} (pass --feature ${hf})`);
  if ((have.flip ?? false) !== (want.flip ?? false))
    out.push(`its vectors were made ${have.flip ? 'with' : 'without'} --flip (${have.flip ? 'pass' : 'drop'} --flip)`);
  if ((have.crops ?? 'none') !== (want.crops ?? 'none'))
    out.push(`its vectors were made with --crops ${have.crops ?? 'none'} (pass --crops ${have.crops ?? 'none'})`);
  return out;
}

/**
 * Opens (or creates) the collection at `uri` for vectors made as `meta` says. A collection whose vectors were
 * made otherwise ({@link encodingDifferences}) is refused, naming both and `--reembed`; with `reembed` it is
 * dropped and created anew (pass the files it held, from {@link heldFiles}, to {@link indexImages} to embed them
 * again). A collection from before encoders were recorded by their weights gets this encoder's digest recorded,
 * with a warning through `warn`: from then on a different encoder is refused.
 */
export async function openForIndexing(
  uri: string,
  meta: CollectionMeta,
  o: { reembed?: boolean; warn?: (msg: string) => void } = {},
): Promise<Collection> {
  if (await Collection.exists(uri)) {
    const coll = await Collection.open(uri);
    const diff = encodingDifferences(coll.meta, meta);
    if (diff.length && !o.reembed) {
      const rows = await coll.count();
      coll.close();
      throw new Error(
        `--db ${uri}: ${diff.join('; ')}. Mixing them would make its ${rows} vectors incomparable: pass --reembed to drop them and embed every file it holds again with this encoder, or index into another --db`,
      );
    }
    if (!diff.length && !o.reembed) {
      if (!coll.meta.encoderSha256 && meta.encoderSha256) {
        o.warn?.(
          `--db ${uri} does not record which weights made its vectors (it was made by an older moco); taking them to be this encoder's${coll.meta.pretrained && coll.meta.pretrained !== meta.pretrained ? ` (it records ${coll.meta.pretrained}, this is ${meta.pretrained})` : ''} and recording its digest now. If another encoder made them, rerun with --reembed`,
        );
        await coll.recordMeta({ encoderSha256: meta.encoderSha256 });
      }
      return coll;
    }
    coll.close();
    await Collection.drop(uri);
  }
  return Collection.open(uri, meta);
}

/**
 * The files a collection holds that are still on disk, with their labels (what `--reembed` embeds again besides
 * the files given), and how many rows name files that are gone (dropped by `--reembed`).
 */
export async function heldFiles(uri: string): Promise<{ files: Found[]; gone: number }> {
  if (!(await Collection.exists(uri))) return { files: [], gone: 0 };
  const coll = await Collection.open(uri);
  try {
    const rows = await coll.files();
    const files = rows.filter((r) => existsSync(r.path)).map((r) => ({ path: r.path, label: r.label }));
    return { files, gone: rows.length - files.length };
  } finally {
    coll.close();
  }
}
