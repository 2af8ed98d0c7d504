// Crash-safe file replacement: write a sibling temp file, fsync it, rename over the target, fsync the directory.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A file that could not be written; `code` is the system error (ENOSPC, EDQUOT, EACCES, …). */
export class FileWriteError extends Error {
  constructor(
    readonly path: string,
    readonly code: string | undefined,
    cause: unknown,
  ) {
    super(`cannot write ${path}: ${describe(code, cause)}`, { cause });
    this.name = 'FileWriteError';
  }
}

function describe(code: string | undefined, cause: unknown): string {
  if (code === 'ENOSPC') return 'no space left on device (ENOSPC)';
  if (code === 'EDQUOT') return 'disk quota exceeded (EDQUOT)';
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * Writes a file atomically: readers see the old file or the whole new one, never a torn one.
 * `write` receives a file descriptor and writes the content with fs.writeSync. A failure (a full disk, say)
 * leaves the old file as it was and no temp file behind, and throws a {@link FileWriteError} naming `path`.
 */
export function writeFileAtomic(path: string, write: (fd: number) => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    rmSync(tmp, { force: true });
    if (e instanceof FileWriteError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    // Errors of the caller's own `write` (not the file system's) pass through unchanged.
    if (!code) throw e;
    throw new FileWriteError(path, code, e);
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is still atomic.
  }
}

/** Writes all of a buffer, looping over short writes. */
export function writeAll(fd: number, buf: ArrayBufferView): void {
  const u8 = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off < u8.length) off += writeSync(fd, u8, off, u8.length - off);
}

/** writeFileAtomic for text or a single buffer. */
export function writeTextAtomic(path: string, content: string | Uint8Array): void {
  writeFileAtomic(path, (fd) => writeAll(fd, typeof content === 'string' ? Buffer.from(content) : content));
}
