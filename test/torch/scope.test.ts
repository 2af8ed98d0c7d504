// Native memory: tidy scopes, explicit dispose, live-tensor accounting, bounded RSS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { forceGc } from '../helpers/gc.js';

test('tidy disposes intermediates and keeps the result', () => {
  const before = torch.memory().tensors;
  const r = torch.tidy(() => {
    const a = torch.ones([10, 10]);
    const b = a.mul(2).add(1);
    return { out: b.sum(), list: [b.mean()] };
  });
  assert.equal(torch.memory().tensors, before + 2);
  assert.equal(r.out.item(), 300);
  torch.dispose(r);
  assert.equal(torch.memory().tensors, before);
});

test('nested tidy moves returned tensors to the parent scope', () => {
  const before = torch.memory().tensors;
  torch.tidy(() => {
    const inner = torch.tidy(() => torch.ones([3]).mul(3));
    assert.equal(inner.isDisposed, false);
    return undefined;
  });
  assert.equal(torch.memory().tensors, before);
});

test('keep() lets a tensor outlive its scope; errors still clean up', () => {
  const before = torch.memory().tensors;
  const kept =
    torch.tidy(() => {
      torch.keep(torch.zeros([4]));
      torch.ones([4]);
      return undefined;
    }) ?? null;
  assert.equal(kept, null);
  assert.equal(torch.memory().tensors, before + 1);
  assert.throws(
    () =>
      torch.tidy(() => {
        torch.ones([5]);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(torch.memory().tensors, before + 1);
});

test('memory() counts bytes of live tensors', () => {
  const m0 = torch.memory();
  const t = torch.zeros([1000], { dtype: 'float64' });
  assert.equal(torch.memory().bytes - m0.bytes, 8000);
  t.dispose();
  assert.equal(torch.memory().bytes, m0.bytes);
});

test('10,000 ops inside tidy leave no tensors behind and RSS bounded', () => {
  const x = torch.randn([64, 64]);
  forceGc();
  const before = torch.memory().tensors;
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 10; i++) {
    torch.tidy(() => {
      let y = x;
      for (let j = 0; j < 1000; j++) y = y.mul(0.999).add(x);
      return undefined;
    });
  }
  assert.equal(torch.memory().tensors, before);
  const grownMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.ok(grownMb < 64, `RSS grew by ${grownMb.toFixed(1)} MiB`);
});

test('noGrad stops recording and restores the mode', () => {
  const w = torch.ones([2]).requiresGrad_(true);
  const y = torch.noGrad(() => w.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.equal(torch.isGradEnabled(), true);
  assert.throws(
    () =>
      torch.noGrad(() => {
        throw new Error('inner');
      }),
    /inner/,
  );
  assert.equal(torch.isGradEnabled(), true);
  assert.equal(w.mul(2).requiresGrad, true);
});

test('createdBytes counts each storage a function created once (in-place results and views share it) and frees them', () => {
  const before = torch.memory();
  const bytes = torch.createdBytes(() => {
    const a = torch.rand([1000]);
    const b = torch.F.relu(a, true); // the same storage as a
    b.view(10, 100);
    a.mul(2); // a second storage
  });
  assert.equal(bytes, 2 * 1000 * 4);
  // Nothing it created is left: no growth (other tests' tensors may be collected meanwhile, so not equality).
  const after = torch.memory();
  assert.ok(
    after.bytes <= before.bytes && after.tensors <= before.tensors,
    `live tensors ${before.tensors} → ${after.tensors}, bytes ${before.bytes} → ${after.bytes}`,
  );
});
