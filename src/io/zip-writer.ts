// A minimal zip writer for uncompressed ("stored") records, laid out as PyTorch's own writer does: each record's
// data starts on a 64-byte boundary (padding in a local extra field), so torch can memory-map it.
// Zip64 records are written when the archive passes 4 GiB.
import { crc32 } from 'node:zlib';
import { writeAll } from './atomic.js';

const ALIGN = 64;
const MAX32 = 0xffffffff;

interface Entry {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}

/** Writes records to an open file descriptor, then the central directory on {@link ZipWriter.finish}. */
export class ZipWriter {
  private pos = 0;
  private readonly entries: Entry[] = [];

  constructor(private readonly fd: number) {}

  /** Appends one record (name inside the archive, its bytes). */
  add(name: string, data: Uint8Array): void {
    const nameBuf = Buffer.from(name, 'utf8');
    const size = data.byteLength;
    const zip64 = size >= MAX32 || this.pos >= MAX32;
    const z64Len = zip64 ? 4 + 16 : 0;
    const fixed = 30 + nameBuf.length + z64Len;
    // Padding extra field ('FB', as torch writes it): 4 bytes of header plus the fill.
    const pad = (ALIGN - ((this.pos + fixed + 4) % ALIGN)) % ALIGN;
    const extra = Buffer.alloc(z64Len + 4 + pad);
    if (zip64) {
      extra.writeUInt16LE(0x0001, 0);
      extra.writeUInt16LE(16, 2);
      extra.writeBigUInt64LE(BigInt(size), 4);
      extra.writeBigUInt64LE(BigInt(size), 12);
    }
    extra.writeUInt16LE(0x4246, z64Len);
    extra.writeUInt16LE(pad, z64Len + 2);
    extra.fill(0x5a, z64Len + 4);
    const crc = crc32(data);
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(zip64 ? 45 : 20, 4);
    h.writeUInt16LE(0, 6); // flags
    h.writeUInt16LE(0, 8); // stored
    h.writeUInt16LE(0, 10); // time
    h.writeUInt16LE(0x21, 12); // date: 1980-01-01, as torch (reproducible files)
    h.writeUInt32LE(crc >>> 0, 14);
    h.writeUInt32LE(zip64 ? MAX32 : size, 18);
    h.writeUInt32LE(zip64 ? MAX32 : size, 22);
    h.writeUInt16LE(nameBuf.length, 26);
    h.writeUInt16LE(extra.length, 28);
    this.entries.push({ name: nameBuf, crc, size, offset: this.pos });
    this.write(h);
    this.write(nameBuf);
    this.write(extra);
    this.write(data);
  }

  /** Writes the central directory and the end records. The descriptor stays open. */
  finish(): void {
    const cdStart = this.pos;
    for (const e of this.entries) {
      const big = e.size >= MAX32 || e.offset >= MAX32;
      const z = Buffer.alloc(big ? 4 + 24 : 0);
      if (big) {
        z.writeUInt16LE(0x0001, 0);
        z.writeUInt16LE(24, 2);
        z.writeBigUInt64LE(BigInt(e.size), 4);
        z.writeBigUInt64LE(BigInt(e.size), 12);
        z.writeBigUInt64LE(BigInt(e.offset), 20);
      }
      const c = Buffer.alloc(46);
      c.writeUInt32LE(0x02014b50, 0);
      c.writeUInt16LE(big ? 45 : 20, 4); // made by
      c.writeUInt16LE(big ? 45 : 20, 6); // needed
      c.writeUInt16LE(0, 8);
      c.writeUInt16LE(0, 10);
      c.writeUInt16LE(0, 12);
      c.writeUInt16LE(0x21, 14);
      c.writeUInt32LE(e.crc >>> 0, 16);
      c.writeUInt32LE(big ? MAX32 : e.size, 20);
      c.writeUInt32LE(big ? MAX32 : e.size, 24);
      c.writeUInt16LE(e.name.length, 28);
      c.writeUInt16LE(z.length, 30);
      c.writeUInt32LE(big ? MAX32 : e.offset, 42);
      this.write(c);
      this.write(e.name);
      this.write(z);
    }
    const cdSize = this.pos - cdStart;
    const n = this.entries.length;
    if (cdStart >= MAX32 || n >= 0xffff) {
      const z64End = this.pos;
      const r = Buffer.alloc(56);
      r.writeUInt32LE(0x06064b50, 0);
      r.writeBigUInt64LE(44n, 4);
      r.writeUInt16LE(45, 12);
      r.writeUInt16LE(45, 14);
      r.writeBigUInt64LE(BigInt(n), 24);
      r.writeBigUInt64LE(BigInt(n), 32);
      r.writeBigUInt64LE(BigInt(cdSize), 40);
      r.writeBigUInt64LE(BigInt(cdStart), 48);
      const l = Buffer.alloc(20);
      l.writeUInt32LE(0x07064b50, 0);
      l.writeBigUInt64LE(BigInt(z64End), 8);
      l.writeUInt32LE(1, 16);
      this.write(r);
      this.write(l);
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(Math.min(n, 0xffff), 8);
    end.writeUInt16LE(Math.min(n, 0xffff), 10);
    end.writeUInt32LE(Math.min(cdSize, MAX32), 12);
    end.writeUInt32LE(Math.min(cdStart, MAX32), 16);
    this.write(end);
  }

  private write(b: Uint8Array): void {
    writeAll(this.fd, b);
    this.pos += b.byteLength;
  }
}
