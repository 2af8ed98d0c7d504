import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/data/rng.js';

test('streams are a function of their keys only', () => {
  const a = new Rng(7, 'aug', 3, 12, 0);
  const b = new Rng(7, 'aug', 3, 12, 0);
  const xs = Array.from({ length: 100 }, () => a.nextU32());
  assert.deepEqual(
    Array.from({ length: 100 }, () => b.nextU32()),
    xs,
  );
  for (const other of [
    new Rng(8, 'aug', 3, 12, 0),
    new Rng(7, 'aug', 4, 12, 0),
    new Rng(7, 'aug', 3, 13, 0),
    new Rng(7, 'aug', 3, 12, 1),
    new Rng(7, 'shuffle', 3, 12, 0),
  ]) {
    assert.notDeepEqual(
      Array.from({ length: 4 }, () => other.nextU32()),
      xs.slice(0, 4),
    );
  }
});

test('state round-trips through JSON', () => {
  const a = new Rng(1);
  for (let i = 0; i < 10; i++) a.random();
  const s = JSON.parse(JSON.stringify(a.state()));
  const b = Rng.fromState(s);
  assert.deepEqual(
    Array.from({ length: 50 }, () => b.random()),
    Array.from({ length: 50 }, () => a.random()),
  );
});

test('uniform, int, normal, permutation behave', () => {
  const r = new Rng(2);
  let sum = 0,
    sq = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const v = r.random();
    assert.ok(v >= 0 && v < 1);
    sum += v;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 3 * Math.sqrt(1 / 12 / n));
  sum = 0;
  for (let i = 0; i < n; i++) {
    const v = r.normal();
    sum += v;
    sq += v * v;
  }
  assert.ok(Math.abs(sum / n) < 3 / Math.sqrt(n) && Math.abs(sq / n - 1) < 0.05);
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[r.int(0, 2)]!++;
  assert.ok(
    counts.every((c) => Math.abs(c - 1000) < 100),
    String(counts),
  );
  const p = r.permutation(100);
  assert.deepEqual(
    [...p].sort((a, b) => a - b),
    Array.from({ length: 100 }, (_, i) => i),
  );
});
