// Downloads and extracts the official CIFAR binary release (the `--download` flag).
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { x as untar } from 'tar';
import { CIFAR_FOLDER, CIFAR_URL, findCifarDir } from './cifar.js';

/** MD5 of the official tarballs, as published on https://www.cs.toronto.edu/~kriz/cifar.html. */
export const CIFAR_MD5 = { 10: 'c32a1d4ab5d03f1284b67883e8d87530', 100: '03b5dce01913d631647c71ecec9e9cb8' } as const;

export interface DownloadCifarOpts {
  /** Where to fetch the .tar.gz from. Default: the official URL ({@link CIFAR_URL}). */
  url?: string;
  /**
   * Expected MD5 (hex) of the tarball. Default: the official release's ({@link CIFAR_MD5}), also for a custom
   * `url` (a mirror serves the same file); `null` skips the check (a locally built archive, tests).
   */
  md5?: string | null;
  /** Called with the bytes received so far and the total (Content-Length; null when the server gives none). */
  onProgress?: (bytes: number, total: number | null) => void;
}

/**
 * Makes sure the CIFAR-10/100 binary release is extracted under `root` and returns the folder of its .bin files.
 * If `root/cifar-10-batches-bin/data_batch_1.bin` (`root/cifar-100-binary/train.bin`) is there already — or `root`
 * is that folder itself, as `Cifar` accepts — returns at once without touching the network. Otherwise downloads
 * the tarball (~163 MB / ~161 MB) into a temporary folder in `root`, checks its MD5, extracts it there and renames
 * the release folder into place, so an interrupted or failed download never leaves a half-written release.
 * Errors name the URL and the reason (network error, HTTP status, checksum mismatch) and how to install by hand.
 */
export async function downloadCifar(root: string, variant: 10 | 100, o: DownloadCifarOpts = {}): Promise<string> {
  const present = findCifarDir(root, variant);
  if (present) return present;
  const url = o.url ?? CIFAR_URL[variant];
  const md5 = o.md5 === undefined ? CIFAR_MD5[variant] : o.md5;
  const folder = CIFAR_FOLDER[variant];
  const dest = join(root, folder);
  const fail = (reason: string): Error =>
    new Error(
      `CIFAR-${variant}: downloading ${url} failed: ${reason}. The machine may be offline: download ${basename(new URL(url).pathname)} ` +
        `on a machine that is online and extract it into ${root} (tar xzf), so that ${join(dest, variant === 10 ? 'data_batch_1.bin' : 'train.bin')} exists.`,
    );

  mkdirSync(root, { recursive: true });
  // In root, not the system temp dir: the final rename must stay on one file system.
  const tmp = mkdtempSync(join(root, `.${folder}.download-`));
  try {
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      throw fail(`network error (${networkReason(e)})`);
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw fail(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
    }
    // Content-Length is the compressed size only without a Content-Encoding (fetch decodes transparently).
    const len = res.headers.get('content-length');
    const total = len && !res.headers.get('content-encoding') ? Number(len) : null;
    const archive = join(tmp, 'archive.tar.gz');
    const hash = createHash('md5');
    let bytes = 0;
    o.onProgress?.(0, total);
    try {
      await pipeline(
        Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>),
        async function* (src: AsyncIterable<Buffer>) {
          for await (const chunk of src) {
            hash.update(chunk);
            bytes += chunk.length;
            o.onProgress?.(bytes, total);
            yield chunk;
          }
        },
        createWriteStream(archive),
      );
    } catch (e) {
      throw fail(`download interrupted after ${bytes} bytes (${networkReason(e)})`);
    }
    const actual = hash.digest('hex');
    if (md5 !== null && actual !== md5.toLowerCase()) {
      throw fail(
        `checksum mismatch: expected MD5 ${md5}, got ${actual} (${bytes} bytes; a truncated or altered download)`,
      );
    }
    const out = join(tmp, 'x');
    mkdirSync(out);
    try {
      await untar({ file: archive, cwd: out, strict: true });
    } catch (e) {
      throw fail(`cannot extract the archive (${(e as Error).message})`);
    }
    const got = findCifarDir(join(out, folder), variant);
    if (got !== join(out, folder))
      throw fail(`the archive has no ${folder}/${variant === 10 ? 'data_batch_1.bin' : 'train.bin'}`);
    try {
      renameSync(got, dest);
    } catch (e) {
      // Another process (a rank of a multi-process run) may have finished first: its release is as good.
      const raced = findCifarDir(root, variant);
      if (raced) return raced;
      throw new Error(
        `CIFAR-${variant}: cannot move the extracted release to ${dest} (${(e as Error).message}); ` +
          `if ${dest} is an incomplete earlier copy, remove it and run again`,
        { cause: e },
      );
    }
    return dest;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The useful part of a fetch/stream error: undici wraps the system error (ECONNREFUSED, ENOTFOUND, …) as `cause`. */
function networkReason(e: unknown): string {
  const err = e as Error & { cause?: Error & { code?: string } };
  const c = err.cause;
  if (!c) return err.message;
  return c.code && !c.message.includes(c.code) ? `${c.code}: ${c.message}` : c.message;
}
