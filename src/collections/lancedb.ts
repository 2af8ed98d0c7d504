// LanceDB and Apache Arrow are optional dependencies: they are imported here, lazily, the first time a command
// needs a collection, so that every other command works (and installs) without them.
import type * as Lance from '@lancedb/lancedb';
import type * as Arrow from 'apache-arrow';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { tuneAllocator } from './allocator.js';

/** The command that installs the pinned versions this code is tested with. */
export const LANCE_INSTALL = 'npm i -E @lancedb/lancedb@0.31.0 apache-arrow@18.1.0';

export interface LanceModules {
  lancedb: typeof Lance;
  arrow: typeof Arrow;
}

let loaded: Promise<LanceModules> | null = null;

/**
 * LanceDB's read-ahead and shuffle buffers, bounded (each unless already set in the environment): its defaults
 * (2 GiB of in-flight I/O, 128 MiB shuffle batches, fragment read-ahead) let an IVF index build at 1M × 128-d
 * rows peak at ~1 GB, twice the vectors' size; with these it peaked at 397 MB (docs/collections.md).
 */
export const LANCE_ENV: Readonly<Record<string, string>> = {
  LANCE_DEFAULT_IO_BUFFER_SIZE: String(32 * 2 ** 20),
  LANCE_SHUFFLE_BATCH_BYTES: String(16 * 2 ** 20),
  LANCE_DEFAULT_FRAGMENT_READAHEAD: '1',
  // Reads in flight on local files (LanceDB's default 8): each is a blocking thread with its own buffers, and an
  // IVF build at 1M rows ran 129 threads. With 2 it ran 32 and its createIndex peaked at 209 MB against 250 MB.
  LANCE_IO_THREADS: '2',
};

/** Loads `@lancedb/lancedb` and `apache-arrow`, or fails naming the install command. */
export function loadLance(): Promise<LanceModules> {
  loaded ??= (async () => {
    try {
      // Lance logs routine notices (a table being created, index statistics) as warnings on stderr.
      process.env.LANCE_LOG ??= 'error';
      process.env.LANCE_INCLUDE_VECTOR_CENTROIDS ??= 'false';
      // Before the native module loads: some of these are read once.
      for (const [k, v] of Object.entries(LANCE_ENV)) process.env[k] ??= v;
      // Before LanceDB starts its threads: they then share two malloc arenas, and its large buffers are
      // returned to the OS when freed (allocator.ts).
      tuneAllocator();
      const lancedb = await import('@lancedb/lancedb');
      // The CommonJS build of apache-arrow, the one lancedb itself requires: two copies of the Arrow classes
      // (ESM and CJS) would make lancedb reject our tables as foreign.
      const arrow = createRequire(createRequire(import.meta.url).resolve('@lancedb/lancedb'))(
        'apache-arrow',
      ) as typeof Arrow;
      return { lancedb, arrow };
    } catch (e) {
      loaded = null;
      const why = (e as Error).message.split('\n')[0];
      throw new Error(
        `collections need the optional packages @lancedb/lancedb and apache-arrow, which did not load (${why}): install them with \`${LANCE_INSTALL}\``,
        { cause: e },
      );
    }
  })();
  return loaded;
}

/**
 * What to hand `lancedb.connect` for a `--db` value: a URI with a scheme (`s3://…`, `db://…`, `file://…`) as
 * is, anything else as the absolute path of a local directory. LanceDB reads any string that starts with `db`
 * (`db`, `dbfoo`, `db/x`) as a LanceDB Cloud URI and asks for an API key, so a relative path must not reach it
 * as typed.
 */
export function lanceUri(db: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(db) ? db : resolve(db);
}
