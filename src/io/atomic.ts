// Crash-safe file replacement: write a sibling temp file, fsync it, rename over the target, fsync the directory.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes a file atomically: readers see the old file or the whole new one, never a torn one.
 * `write` receives a file descriptor and writes the content with fs.writeSync.
 */
export function writeFileAtomic(path: string, write: (fd: number) => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    write(fd);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
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
