// moco pretrain's flags are made from the settings table: every setting with a flag has one, and what the flag
// gives reaches the setting's field (or, for --mlp and --aug-plus, the field they set) through resolveConfig.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { addPretrainOptions, overridesFromFlags } from '../../src/cli/commands/pretrain-flags.js';
import { SETTINGS, resolveConfig } from '../../src/train/index.js';

test('each setting with a flag is one option of moco pretrain, and its value reaches its field', () => {
  const cmd = addPretrainOptions(new Command('pretrain'));
  const flags = cmd.options.map((o) => o.long);
  for (const s of SETTINGS) {
    if (s.cli === false) assert.ok(!flags.includes(`--${s.key}`), s.key);
    else assert.ok(flags.includes(`--${s.negate ? 'no-' : ''}${s.key}`), s.key);
  }
  const argv = ['--preset', 'cifar', '--moco-k', '128', '-b', '32', '--mlp', '--no-shuffle-bn', '--schedule', '3,4'];
  cmd.parse([...argv, '--amp', 'bf16'], { from: 'user' });
  const c = resolveConfig('synthetic', overridesFromFlags(cmd.opts()));
  assert.deepEqual(
    [c.K, c.batchSize, c.head, c.shuffleBn, c.schedule, c.amp, c.augment],
    [128, 32, 'mlp', false, [3, 4], 'bf16', 'cifar'],
  );
  const none = addPretrainOptions(new Command('pretrain'));
  none.parse([], { from: 'user' });
  const given = Object.entries(overridesFromFlags(none.opts())).filter(([, v]) => v !== undefined);
  assert.deepEqual(given, [], 'no flag, no override');
});
