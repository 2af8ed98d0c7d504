// Failure paths of a run: a full disk during a checkpoint save, and a damaged newest checkpoint on resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { pretrain, readCheckpoint, resolveConfig } from '../../src/train/index.js';
import { loadEncoder } from '../../src/eval/encoder.js';
import { tmpDir } from '../helpers/pytorch.js';
import { runCli } from '../helpers/cli.js';
import { tinyRun } from '../helpers/tiny-run.js';

const TINY = tinyRun({ epochs: 3 });

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const d = tmpDir('moco-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d], { stdio: 'ignore' });
    execFileSync('umount', [d], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

const tmpfs = canMountTmpfs();

test(
  'a full disk during a save names the file, the run directory, the intact last checkpoint and the next step',
  { skip: !tmpfs && 'needs root and mount -t tmpfs' },
  async () => {
    // The size of one checkpoint of this run, from a run on an ordinary disk.
    const probe = tmpDir();
    await pretrain(resolveConfig('synthetic:64', { ...TINY, maxSteps: 1, out: probe }), { quiet: true });
    const ckBytes = statSync(join(probe, 'checkpoint_0000001.safetensors')).size;
    rmSync(probe, { recursive: true, force: true });

    const mnt = tmpDir('moco-full-');
    // Room for one checkpoint and the small files, not for a second checkpoint beside it.
    execFileSync('mount', [
      '-t',
      'tmpfs',
      '-o',
      `size=${Math.ceil((ckBytes * 1.5) / 4096) * 4096 + 256 * 1024}`,
      'tmpfs',
      mnt,
    ]);
    try {
      const out = join(mnt, 'run');
      await assert.rejects(
        pretrain(resolveConfig('synthetic:64', { ...TINY, maxSteps: 3, saveEverySteps: 1, out }), { quiet: true }),
        (e: Error) => {
          assert.match(e.message, /cannot write .*checkpoint_0000002\.safetensors: no space left on device \(ENOSPC\)/);
          assert.ok(e.message.includes(`run directory ${out}`), e.message);
          assert.ok(
            e.message.includes(`the last good checkpoint ${join(out, 'checkpoint_0000001.safetensors')} is intact`),
            e.message,
          );
          assert.ok(e.message.includes(`moco pretrain --resume ${out}`), e.message);
          return true;
        },
      );
      assert.deepEqual(
        readdirSync(out).filter((f) => f.endsWith('.tmp')),
        [],
        'no temp file left behind',
      );
      const ck = readCheckpoint(out);
      assert.deepEqual(ck.state, { epoch: 0, batch: 1, step: 1 });
      for (const t of ck.tensors.values()) t.dispose();
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  },
);

test('a failed save prints a resume command that works as printed: no data argument, the run directory quoted for the shell', async () => {
  // A directory where the second checkpoint goes makes its save fail (rename onto a non-empty directory) on any
  // disk, as a full one would; the run directory has a space, so an unquoted path would not paste into a shell.
  const out = join(tmpDir(), 'my run');
  mkdirSync(join(out, 'checkpoint_0000002.safetensors', 'blocked'), { recursive: true });
  await assert.rejects(
    pretrain(resolveConfig('synthetic:64', { ...TINY, maxSteps: 3, saveEverySteps: 1, out }), { quiet: true }),
    (e: Error) => {
      assert.match(e.message, /cannot write .*checkpoint_0000002\.safetensors/);
      assert.ok(e.message.endsWith(`Free space, then continue with: moco pretrain --resume '${out}'`), e.message);
      return true;
    },
  );
  // Pasted as printed (the quotes stripped by the shell), it continues the run on its recorded data.
  rmSync(join(out, 'checkpoint_0000002.safetensors'), { recursive: true });
  const r = await runCli(['pretrain', '--resume', out, '--quiet']).done;
  assert.equal(r.code, 0, r.err);
  assert.equal((JSON.parse(r.out.trim().split('\n').pop()!) as { steps: number }).steps, 3);
});

test('a damaged newest checkpoint: resume and --pretrained fall back to the newest intact one with a warning; none intact names each', async () => {
  const out = tmpDir();
  await pretrain(resolveConfig('synthetic:64', { ...TINY, maxSteps: 3, saveEverySteps: 1, out }), { quiet: true });
  const f2 = join(out, 'checkpoint_0000002.safetensors');
  const f3 = join(out, 'checkpoint_0000003.safetensors');
  assert.equal(readFileSync(join(out, 'last'), 'utf8').trim(), 'checkpoint_0000003.safetensors');

  // Bit rot: one byte flipped inside the tensor data (same size, the header still parses).
  const size = statSync(f3).size;
  const fd = openSync(f3, 'r+');
  const at = size - 1000;
  const b = Buffer.alloc(1);
  b[0] = readFileSync(f3)[at]! ^ 0x40;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
  const warnings: string[] = [];
  const ck = readCheckpoint(out, (m) => warnings.push(m));
  assert.equal(ck.file, f2);
  assert.deepEqual(ck.state, { epoch: 1, batch: 0, step: 2 });
  for (const t of ck.tensors.values()) t.dispose();
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /checkpoint_0000003\.safetensors is damaged \(.*do not match the SHA-256/);
  assert.match(warnings[0]!, /using .*checkpoint_0000002\.safetensors, the newest intact checkpoint/);
  // The file itself, named directly, is refused with the reason.
  assert.throws(() => readCheckpoint(f3), /checkpoint_0000003\.safetensors: damaged/);
  // --pretrained DIR (knn, lincls, embed) follows the same rule.
  const enc = loadEncoder(out);
  enc.dispose();

  // Truncated copy of the next one, then no intact file at all.
  writeFileSync(f2, readFileSync(f2).subarray(0, 4000));
  const f1 = join(out, 'checkpoint_0000001.safetensors');
  writeFileSync(f1, 'not a checkpoint');
  assert.throws(
    () => readCheckpoint(out, () => undefined),
    (e: Error) => {
      assert.match(e.message, /no intact checkpoint/);
      for (const f of [f1, f2, f3]) assert.ok(e.message.includes(f), `${f} named in: ${e.message}`);
      assert.match(e.message, /file ends early|truncated|exceeds the file/);
      return true;
    },
  );
  rmSync(out, { recursive: true, force: true });
});
