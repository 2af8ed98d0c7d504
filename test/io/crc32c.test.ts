// CRC-32C against published vectors (the check value of the CRC catalogue and RFC 3720's iSCSI vectors) and
// TFRecord's mask against its definition written with BigInt arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, maskCrc } from '../../src/io/crc32c.js';

test('crc32c matches the known vectors', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  // Continuing a CRC over a second chunk equals one CRC over both.
  const a = Buffer.from('1234'),
    b = Buffer.from('56789');
  assert.equal(crc32c(b, crc32c(a)), 0xe3069283);
});

test('maskCrc rotates right by 15 and adds 0xa282ead8 modulo 2^32', () => {
  const ref = (c: number): number => {
    const x = BigInt(c);
    const rot = ((x >> 15n) | (x << 17n)) & 0xffffffffn;
    return Number((rot + 0xa282ead8n) & 0xffffffffn);
  };
  for (const c of [0, 1, 0xe3069283, 0xffffffff, 0x80000000, 0x00007fff, 0x12345678])
    assert.equal(maskCrc(c), ref(c), `mask(0x${c.toString(16)})`);
  assert.equal(maskCrc(0), 0xa282ead8);
  assert.equal(maskCrc(0xe3069283), ref(0xe3069283));
});
