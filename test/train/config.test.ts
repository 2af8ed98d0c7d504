// --config files and sweep grids speak one vocabulary, moco pretrain's flag names (config.json's camelCase as an
// alias): what a user writes in a file is what runs, precedence preset < file < flags, and a key that is not a
// setting stops the command naming it and the nearest one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readGridFile, parseGrid, gridCells, cellOverrides } from '../../src/train/index.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';

const CLI = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');

function moco(args: string[]): { code: number; out: string; err: string } {
  try {
    const out = execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, out, err: '' };
  } catch (e) {
    const x = e as { status: number; stdout: string; stderr: string };
    return { code: x.status, out: x.stdout, err: x.stderr };
  }
}

const TINY = ['--width', '4', '--image-size', '16', '--threads', '1', '--max-steps', '1', '--quiet'];

test('moco pretrain --config with flag names: the file overrides the preset, flags override the file', () => {
  const dir = tmpDir();
  const file = join(dir, 'run.yaml');
  writeFileSync(
    file,
    'preset: cifar\nbatch-size: 16\nmoco-k: 96\nbn-splits: 2\nmlp: true\nmoco-t: 0.3\nschedule: [5, 7]\n',
  );
  const out = join(dir, 'run');
  const r = moco(['pretrain', 'synthetic:32', '--config', file, '--moco-t', '0.25', ...TINY, '--out', out]);
  assert.equal(r.code, 0, r.err);
  const c = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(
    [c.preset, c.batchSize, c.K, c.bnSplits, c.head, c.schedule, c.T],
    ['cifar', 16, 96, 2, 'mlp', [5, 7], 0.25],
  );
  assert.equal(c.cifarStem, true, "the rest is the file's preset (cifar)");

  // A run's own config.json (camelCase keys) is a config file too.
  const again = join(dir, 'again');
  const r2 = moco(['pretrain', 'synthetic:32', '--config', join(out, 'config.json'), ...TINY, '--out', again]);
  assert.equal(r2.code, 0, r2.err);
  const c2 = JSON.parse(readFileSync(join(again, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([c2.batchSize, c2.K, c2.T, c2.head], [16, 96, 0.25, 'mlp']);
});

test('moco pretrain --config: an unknown key, a bad value and one setting twice are refused before any work', () => {
  const dir = tmpDir();
  const cases: [string, RegExp][] = [
    [
      'batch_size: 64\n',
      /--config .*bad\.yaml: unknown key 'batch_size'; did you mean 'batch-size'\? Keys are moco pretrain's flag names without the dashes/,
    ],
    ['moco-t: 0.2\ntau: 0.2\n', /unknown key 'tau'; did you mean 'moco-t'\?/],
    ['batch-size: lots\n', /--config .*bad\.yaml: batch-size: expects an integer, got 'lots'/],
    ['mlp: yes please\n', /--config .*bad\.yaml: mlp: expects true or false, got 'yes please'/],
    ['preset: cifar\nbatch-size: 0\n', /invalid --batch-size 0 \(from --config .*bad\.yaml\): a positive integer/],
    ['batch-size: 64\nbatchSize: 32\n', /'batchSize' and 'batch-size' set the same setting \(--batch-size\); keep one/],
  ];
  for (const [text, re] of cases) {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, text);
    const out = join(dir, 'never');
    const r = moco(['pretrain', 'synthetic:32', '--config', file, '--out', out]);
    assert.equal(r.code, 1, text);
    assert.match(r.err, re);
  }
});

test("--grid and --grid-file take the same keys as --config: flag names or config.json's camelCase", () => {
  const dir = tmpDir();
  writeFileSync(join(dir, 'g.yaml'), 'batchSize: [16, 32]\nK: [64]\nshuffle-bn: [false]\n');
  const axes = readGridFile(join(dir, 'g.yaml'));
  assert.deepEqual(
    axes.map((a) => a.key),
    ['batch-size', 'moco-k', 'shuffle-bn'],
  );
  assert.deepEqual(gridCells(axes).map(cellOverrides), [
    { batchSize: 16, K: 64, shuffleBn: false },
    { batchSize: 32, K: 64, shuffleBn: false },
  ]);
  // Keys that were not grid keys before: every pretrain setting except where the runs go.
  assert.deepEqual(cellOverrides(gridCells(parseGrid('bn-splits=2 knn-feature=backbone'))[0]!), {
    bnSplits: 2,
    knnFeature: 'backbone',
  });
  assert.throws(() => parseGrid('out=a,b'), /--grid: 'out' cannot vary in a grid/);
  const r = moco(['sweep', 'synthetic:32', '--grid', 'batchsize=16', '--out', join(dir, 's')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /--grid: unknown key 'batchsize'; did you mean 'batch-size'\?/);
});
