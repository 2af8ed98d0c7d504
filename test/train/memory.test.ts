// The pre-flight memory check (docs/memory.md): the estimate of a run's peak against measured peaks on two archs,
// the refusal of a run that cannot fit before any work, the available figure's override, and pretrain's help.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ESTIMATE_FACTOR, availableMemory, parseBytes } from '../../src/train/index.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';

const CLI = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');

function moco(args: string[], env: Record<string, string> = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// Each run in a fresh process, whose resident high-water mark (ru_maxrss, VmHWM) is the run's alone.
for (const [name, args] of [
  [
    'resnet18 CIFAR stem, width 32, batch 64',
    ['synthetic:256', '--preset', 'cifar', '--width', '32', '--batch-size', '64'],
  ],
  ['resnet50, 64 px, batch 8', ['synthetic:64', '-a', 'resnet50', '--image-size', '64', '--batch-size', '8']],
] as const) {
  test(`the estimated peak memory is within ${ESTIMATE_FACTOR}× of the measured peak: ${name}`, () => {
    const r = moco([
      'pretrain',
      ...args,
      '--max-steps',
      '2',
      '--threads',
      '2',
      '--quiet',
      '--out',
      join(tmpDir(), 'run'),
    ]);
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out.trim().split('\n').pop()!) as { peakRssMB: number; peakEstimateMB: number };
    const ratio = s.peakRssMB / s.peakEstimateMB;
    assert.ok(
      ratio <= ESTIMATE_FACTOR && ratio >= 1 / ESTIMATE_FACTOR,
      `measured ${s.peakRssMB.toFixed(0)} MiB, estimated ${s.peakEstimateMB.toFixed(0)} MiB (×${ratio.toFixed(2)})`,
    );
  });
}

test('the default recipe is refused before any work where it cannot fit, naming the estimate, the memory available and the flags that bring it down', () => {
  const out = join(tmpDir(), 'run');
  const r = moco(['pretrain', 'synthetic:64', '--max-steps', '1', '--out', out], { MOCO_MEMORY_AVAILABLE: '1G' });
  assert.equal(r.code, 1);
  assert.match(
    r.err,
    /would need about \d+\.\d GiB of memory at its peak \(resnet50 width 64 at 224 px, --batch-size 256 \(preset mocov1's\)/,
  );
  assert.match(r.err, /more than the 1\.0 GiB available \(MOCO_MEMORY_AVAILABLE\)/);
  for (const flag of ['--batch-size', '--image-size 224', '--preset cifar', '--no-memory-check'])
    assert.ok(r.err.includes(flag), `${flag} in: ${r.err}`);
  assert.equal(existsSync(out), false, 'no run directory: nothing was started');
});

test('MOCO_MEMORY_AVAILABLE replaces the available figure; a value that is not an amount names itself and the fix', () => {
  assert.equal(parseBytes('2G'), 2 ** 31);
  assert.equal(availableMemory({ MOCO_MEMORY_AVAILABLE: '512M' }).bytes, 512 * 2 ** 20);
  assert.ok(availableMemory({}).bytes > 0);
  assert.throws(
    () => availableMemory({ MOCO_MEMORY_AVAILABLE: 'lots' }),
    /MOCO_MEMORY_AVAILABLE='lots' \(from the environment\) is not an amount of memory; give bytes or a number with a unit \(512M, 2G\)/,
  );
});

test("moco pretrain --help names the default preset and every flag's default", () => {
  const r = moco(['pretrain', '--help']);
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.out.replace(/\s+/g, ' '),
    /Without --preset the recipe is mocov1 \(main_moco\.py's defaults: resnet50, 224 px, batch 256, K 65536\)/,
  );
  // Option blocks: a line starting with a flag, and its wrapped continuation lines.
  const blocks = r.out
    .split('Options:')[1]!
    .split(/\n(?= {2}-)/)
    .map((b) => b.replace(/\s+/g, ' ').trim())
    .filter((b) => b && !b.startsWith('-h, --help'));
  assert.ok(blocks.length > 50, `${blocks.length} options`);
  for (const b of blocks) assert.match(b, /\(default: [^)]/, b);
  assert.ok(blocks.some((b) => b.startsWith('-b, --batch-size') && b.includes("(default: 256, preset mocov1's)")));
});
