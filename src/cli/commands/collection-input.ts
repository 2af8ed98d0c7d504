// What dedup, cluster and select work on: a collection's rows (--db, optionally --where), or image files
// embedded in memory with --pretrained (for folders without a collection).
import { resolve } from 'node:path';
import type { Collection, FileRow } from '../../collections/index.js';
import { embedSettings, progress, type EmbedFlags } from './eval-common.js';

export interface InputOpts extends EmbedFlags { db?: string; where?: string }

export interface Loaded {
  rows: FileRow[];
  vectors: Float32Array;
  dim: number;
  /** The open collection with --db (the caller closes it). */
  coll: Collection | null;
  source: string;
}

export async function loadInput(cmd: string, images: string[], o: InputOpts): Promise<Loaded> {
  const { Collection, parseWhere, fileFacts, idOf } = await import('../../collections/index.js');
  if (o.db !== undefined) {
    if (images.length) throw new Error(`moco ${cmd}: give --db URI or image folders, not both`);
    const coll = await Collection.open(o.db);
    try {
      const { rows, vectors } = await coll.readAll(o.where !== undefined ? { where: parseWhere(o.where) } : undefined);
      if (!rows.length) throw new Error(`${o.db}: no rows${o.where ? ` where ${o.where}` : ''}`);
      return { rows, vectors, dim: coll.dim, coll, source: o.db };
    } catch (e) {
      coll.close();
      throw e;
    }
  }
  if (!images.length) throw new Error(`moco ${cmd}: give --db URI (a collection from \`moco index\`) or image files/folders with --pretrained`);
  if (o.where !== undefined) throw new Error('--where needs --db');
  if (!o.pretrained) throw new Error(`moco ${cmd} on image files needs --pretrained <checkpoint> to embed them (or use --db with a collection)`);
  const emb = embedSettings(o);
  const { walkImages } = await import('../../data/walk.js');
  const found = walkImages(images, { onSkip: (s) => console.error(`moco ${cmd}: skipping ${s.path}: ${s.reason}`) }).found;
  const labels = new Map(found.map((f) => [resolve(f.path), f.label]));
  const files = [...labels.keys()];
  if (!files.length) throw new Error(`no image files under ${images.join(', ')}`);
  const e = await embedFiles(cmd, files, o.pretrained, emb);
  const rows: FileRow[] = [];
  for (const p of e.paths) rows.push({ id: idOf(p), path: p, label: labels.get(p) ?? null, ...await fileFacts(p) });
  return { rows, vectors: e.vectors, dim: e.dim, coll: null, source: images.join(' ') };
}

/** Embeds `files` with the encoder of `pretrained` as `emb` says; unreadable files are named and left out. */
export async function embedFiles(cmd: string, files: readonly string[], pretrained: string, emb: ReturnType<typeof embedSettings>): Promise<{ paths: string[]; vectors: Float32Array; dim: number }> {
  const { embedImages, loadEncoder } = await import('../../eval/index.js');
  const encoder = loadEncoder(pretrained);
  try {
    return await embedImages(encoder, files, { ...emb, onProgress: progress(`moco ${cmd}: embedding`), onSkip: (s) => console.error(`moco ${cmd}: skipping ${s.path}: ${s.reason}`) });
  } finally {
    encoder.dispose();
  }
}

/** Output format by extension: .json or .csv. */
export function outFormat(flag: string, file: string): 'json' | 'csv' {
  if (file.endsWith('.json')) return 'json';
  if (file.endsWith('.csv')) return 'csv';
  throw new Error(`${flag} ${file}: expected a .json or .csv file`);
}

/** A CSV field, quoted when needed. */
export const csv = (v: string | number | null): string => {
  const s = v === null ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};
