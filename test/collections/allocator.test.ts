// glibc's allocator knobs (native/allocator.c): the arena cap is set unless the user set MALLOC_ARENA_MAX, and a
// trim gives freed heap memory back to the OS (RSS falls), which glibc alone does not do for memory below the
// heap's top.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mallocStats, trimFreeMemory, trimWhile } from '../../src/collections/allocator.js';
import { forceGc } from '../helpers/gc.js';

const glibc = Boolean(
  (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime,
);
const anonMB = (): number => Number(/RssAnon:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const allocator = fileURLToPath(new URL('../../src/collections/allocator.js', import.meta.url));

test(
  "allocator: the arena cap and mmap threshold are set, unless glibc's variables are in the environment",
  { skip: !glibc && 'not glibc' },
  () => {
    const run = (env: NodeJS.ProcessEnv): unknown =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `const a = await import(${JSON.stringify(allocator)}); process.stdout.write(JSON.stringify(a.tuneAllocator()))`,
          ],
          { encoding: 'utf8', env },
        ),
      );
    const { MALLOC_ARENA_MAX: _a, MALLOC_MMAP_THRESHOLD_: _m, ...rest } = process.env;
    assert.deepEqual(run(rest), { arenaMax: true, mmapThreshold: true });
    assert.deepEqual(run({ ...rest, MALLOC_ARENA_MAX: '4' }), { arenaMax: false, mmapThreshold: true });
    assert.deepEqual(run({ ...rest, MALLOC_MMAP_THRESHOLD_: '131072' }), { arenaMax: true, mmapThreshold: false });
  },
);

test('allocator: trimming returns freed heap memory to the OS', { skip: !glibc && 'not glibc' }, () => {
  // 160 MB of 64 KiB buffers (below glibc's mmap threshold: they come from the heap), every 50th kept so that
  // the freed ones lie below live memory, where glibc does not release them by itself.
  forceGc();
  trimFreeMemory();
  let bufs: Buffer[] | null = Array.from({ length: 2500 }, () => Buffer.alloc(64 * 1024, 1));
  const kept = bufs.filter((_, i) => i % 50 === 0);
  // eslint-disable-next-line no-useless-assignment -- dropping the only reference is what lets the GC free them
  bufs = null;
  forceGc();
  const held = mallocStats()!;
  const before = anonMB();
  assert.ok(held.free > 100 * 2 ** 20, `malloc holds the freed buffers (free ${(held.free / 2 ** 20).toFixed(0)} MB)`);
  assert.equal(trimFreeMemory(), true);
  const after = anonMB();
  assert.ok(
    before - after > 100,
    `RSS fell by ${(before - after).toFixed(0)} MB (from ${before.toFixed(0)} MB); expected > 100`,
  );
  assert.equal(kept.length, 50);
});

test("allocator: trimWhile returns the work's value and passes its error on", async () => {
  assert.equal(
    await trimWhile(async () => {
      await new Promise((r) => setTimeout(r, 30));
      return 7;
    }, 5),
    7,
  );
  await assert.rejects(
    trimWhile(() => Promise.reject(new Error('boom'))),
    /boom/,
  );
});
