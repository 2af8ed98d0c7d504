// What dedup, cluster and select work on, from their flags: --db (optionally --where), or image files embedded
// with --pretrained (collections/rows.ts reads or embeds them).
import type { EmbedRowsOpts, LoadedRows } from '../../collections/index.js';
import { embedSettings, progress, type EmbedFlags } from './eval-common.js';

export interface InputOpts extends EmbedFlags {
  db?: string;
  where?: string;
}

/** The rows of `--db` or of the image arguments, after checking that exactly one was given. */
export async function loadInput(cmd: string, images: string[], o: InputOpts): Promise<LoadedRows> {
  const { embedFileRows, readCollectionRows } = await import('../../collections/index.js');
  if (o.db !== undefined) {
    if (images.length) throw new Error(`moco ${cmd}: give --db URI or image folders, not both`);
    return readCollectionRows(o.db, o.where);
  }
  if (!images.length)
    throw new Error(
      `moco ${cmd}: give --db URI (a collection from \`moco index\`) or image files/folders with --pretrained`,
    );
  if (o.where !== undefined) throw new Error('--where needs --db');
  if (!o.pretrained)
    throw new Error(
      `moco ${cmd} on image files needs --pretrained <checkpoint> to embed them (or use --db with a collection)`,
    );
  return embedFileRows(images, o.pretrained, { ...embedSettings(o), ...embedHooks(cmd) });
}

/** Progress and skipped files of an embedding on stderr, prefixed `moco <cmd>:`. */
export function embedHooks(cmd: string): Pick<EmbedRowsOpts, 'onProgress' | 'onSkip'> {
  return {
    onProgress: progress(`moco ${cmd}: embedding`),
    onSkip: (s) => console.error(`moco ${cmd}: skipping ${s.path}: ${s.reason}`),
  };
}

/** Output format by extension: .json or .csv. */
export function outFormat(flag: string, file: string): 'json' | 'csv' {
  if (file.endsWith('.json')) return 'json';
  if (file.endsWith('.csv')) return 'csv';
  throw new Error(`${flag} ${file}: expected a .json or .csv file`);
}
