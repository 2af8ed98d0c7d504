// docs/cli.md is rendered from the settings table: a setting added, renamed or re-described there and not
// regenerated here fails this test, so the page cannot drift from `moco pretrain --help`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CLI_DOCS, cliDocs } from '../../src/cli/docs-cli.js';
import { SETTINGS } from '../../src/train/index.js';

test('docs/cli.md is the settings table as npm run docs:cli renders it', () => {
  const page = readFileSync(CLI_DOCS, 'utf8');
  assert.ok(page === cliDocs(), 'docs/cli.md is stale: run npm run docs:cli and commit docs/cli.md');
  for (const s of SETTINGS) assert.ok(page.includes(`| \`${s.key}\``), `docs/cli.md has no row for ${s.key}`);
});
