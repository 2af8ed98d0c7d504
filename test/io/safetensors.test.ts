// safetensors written here load in a plain-Python reader (header + numpy.frombuffer) and vice versa.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { PYTHON, assertClose, repoRoot, tmpDir } from '../helpers/pytorch.js';

test("our file loads in Python; Python's file loads here; metadata survives", () => {
  const dir = tmpDir();
  const ours = {
    f32: torch.randn([3, 4]),
    f64: torch.randn([2], { dtype: 'float64' }),
    i64: torch.tensor([1, -2, 3], { dtype: 'int64' }),
    u8: torch.tensor([0, 255], { dtype: 'uint8' }),
    b: torch.tensor([1, 0, 1], { dtype: 'bool' }),
    scalar: torch.tensor([7], { shape: [] }),
    empty: torch.zeros([0, 3]),
    // Past the 8 MiB a save copies out at a time, and a name JSON would order first.
    big: torch.randn([3, 1024, 1024]),
    0: torch.tensor([5]),
  };
  saveSafetensors(join(dir, 'a.safetensors'), ours, { epoch: '3', note: 'héllo', 7: 'seven', tensors_sha256: 'stale' });
  const hlen = Number(readFileSync(join(dir, 'a.safetensors')).readBigUInt64LE(0));
  assert.equal(hlen % 8, 0, 'header padded to 8 bytes');
  const script = `
import sys, torch
sys.path.insert(0, ${JSON.stringify(join(repoRoot(), 'test', 'py'))})
from st import load, save
t, meta = load(sys.argv[1])
# The checksum is the SHA-256 of the data section (all tensor bytes in file order), checked independently here.
import hashlib, struct
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
assert meta.pop('tensors_sha256') == hashlib.sha256(raw[8 + n:]).hexdigest()
assert meta == {'epoch': '3', 'note': 'h\\u00e9llo', '7': 'seven'}, meta
out = {k + '_x2': (v * 2 if v.dtype != torch.bool else ~v) for k, v in t.items()}
save(out, sys.argv[2], {'from': 'python'})
`;
  writeFileSync(join(dir, 'rt.py'), script);
  execFileSync(PYTHON, [join(dir, 'rt.py'), join(dir, 'a.safetensors'), join(dir, 'b.safetensors')]);
  const back = loadSafetensors(join(dir, 'b.safetensors'));
  assert.deepEqual(back.metadata, { from: 'python' });
  assertClose(back.tensors.get('f32_x2')!, ours.f32.mul(2), 'f32');
  assertClose(back.tensors.get('f64_x2')!, ours.f64.mul(2), 'f64');
  assert.deepEqual(back.tensors.get('i64_x2')!.toArray(), [2, -4, 6]);
  assert.deepEqual(back.tensors.get('u8_x2')!.toArray(), [0, 254]);
  assert.deepEqual(back.tensors.get('b_x2')!.toArray(), [0, 1, 0]);
  assert.deepEqual(back.tensors.get('scalar_x2')!.shape, []);
  assert.deepEqual(back.tensors.get('empty_x2')!.shape, [0, 3]);
  assertClose(back.tensors.get('big_x2')!, ours.big.mul(2), 'big');
  assert.deepEqual(back.tensors.get('0_x2')!.toArray(), [10]);
  const again = loadSafetensors(join(dir, 'a.safetensors'));
  assertClose(again.tensors.get('big')!, ours.big, 'big, read back here (checksum checked)');
});

test('writes are atomic and corrupt files give clear errors', () => {
  const dir = tmpDir();
  const p = join(dir, 'c.safetensors');
  saveSafetensors(p, { a: torch.ones([4]) });
  assert.deepEqual(readdirSync(dir), ['c.safetensors'], 'no temp file left behind');
  const bytes = readFileSync(p);
  writeFileSync(p, bytes.subarray(0, bytes.length - 3));
  assert.throws(() => loadSafetensors(p), /c\.safetensors: tensor 'a' offsets .* do not fit/);
  writeFileSync(p, Buffer.from('nonsense'));
  assert.throws(() => loadSafetensors(p), /not a safetensors file/);
  assert.ok(existsSync(p));
});
