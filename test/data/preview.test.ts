import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { renderAugmentPreview } from '../../src/data/preview.js';
import { tmpDir } from '../helpers/pytorch.js';

test('augment-preview renders original + views per row as a PNG', async () => {
  const dir = tmpDir('moco-preview-');
  try {
    const out = join(dir, 'grid.png');
    const r = await renderAugmentPreview('synthetic:40', { preset: 'cifar', out, images: 3, views: 2 });
    const m = await sharp(out).metadata();
    // 32-px views upscaled ×4 to 128-px cells, 3 columns, 4-px gaps.
    assert.deepEqual([m.width, m.height, r.width, r.height], [3 * 128 + 4 * 4, 3 * 128 + 4 * 4, 400, 400]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
