// The run report in a real browser (Debian's chromium via playwright-core, offline): a report of two short
// synthetic runs opens from file:// with no console error, page error or request other than data:/file:, every
// chart canvas has drawn pixels, every image decoded; the x-axis switch and the smoothing slider redraw.
// Also: the page is one file (no external reference) and its data block survives hostile strings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pretrain, readMetrics, resolveConfig } from '../../src/train/index.js';
import { loadReportRun } from '../../src/views/report-data.js';
import { renderReport, scriptJson, writeReport } from '../../src/views/report.js';
import { ReportObserver } from '../../src/views/report-observer.js';
import { renderNeighbourGrid } from '../../src/views/neighbour-grid.js';
import { launchBrowser, openGuarded } from '../helpers/browser.js';
import { tmpDir } from '../helpers/pytorch.js';
import { tinyRun } from '../helpers/tiny-run.js';

const TINY = tinyRun({ imageSize: 16, printFreq: 2, knnEvery: 1 });

test('scriptJson leaves no way out of the <script> element', () => {
  const s = scriptJson({ a: '</script><script>alert(1)</script>', b: '<!--', c: '\u2028\u2029' });
  assert.ok(!s.includes('<') && !s.includes('\u2028') && !s.includes('\u2029'), s);
  assert.deepEqual(JSON.parse(s), { a: '</script><script>alert(1)</script>', b: '<!--', c: '\u2028\u2029' });
});

test(
  'a report of two runs renders in chromium: charts drawn, images decoded, nothing fetched',
  { timeout: 300_000 },
  async () => {
    const root = tmpDir();
    const a = join(root, 'lr-0.06'),
      b = join(root, 'lr-0.03');
    // As the CLI runs it: the report observer, and the neighbour grids.
    const views = (out: string) => ({
      quiet: true,
      observers: [new ReportObserver(out)],
      neighbourGrid: renderNeighbourGrid,
    });
    await pretrain(resolveConfig('synthetic:128', { ...TINY, out: a }), views(a));
    await pretrain(resolveConfig('synthetic:128', { ...TINY, lr: 0.03, out: b }), views(b));
    // Every run leaves its own report behind.
    for (const d of [a, b]) assert.ok(existsSync(join(d, 'report.html')), `${d}/report.html`);
    // The cards' numbers are the metrics' own.
    const rows = readMetrics(a);
    const run = loadReportRun(a);
    const knnRows = rows.filter((r) => r.knnTop1 !== undefined);
    assert.equal(run.summary.knnLast, knnRows.at(-1)!.knnTop1);
    assert.equal(run.summary.knnInit, knnRows[0]!.knnTop1);
    assert.equal(run.summary.knnBest, Math.max(...knnRows.filter((r) => r.step > 0).map((r) => r.knnTop1!)));
    assert.equal(run.summary.finalLoss, rows.filter((r) => r.knnTop1 === undefined).at(-1)!.loss);
    assert.equal(run.steps.step.length, 8);
    assert.deepEqual(
      run.steps.epoch,
      [1, 2, 3, 4, 5, 6, 7, 8].map((s) => s / 4),
    );
    assert.equal(run.info?.state, 'finished');
    const out = join(root, 'compare.html');
    writeReport([a, b], out);
    const html = readFileSync(out, 'utf8');
    // Self-contained: no src/href to anything but data: URIs and in-page anchors.
    const refs = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    assert.ok(refs.length >= 4, `${refs.length} image sources`);
    for (const r of refs) assert.match(r, /^(data:image\/png;base64,|#)/, r.slice(0, 60));
    assert.match(
      html,
      /<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; img-src data:; style-src &#39;sha256-/,
    );
    assert.ok(
      !/https?:\/\//.test(html.replace(/https:\/\/github\.com\/leeoniya\/uPlot/g, '')),
      "no URL besides uPlot's banner comment",
    );
    // The comparison table names the setting that differs.
    assert.match(html, /settings that differ.*<th>lr<\/th><td>0\.06<\/td><td>0\.03<\/td>/s);

    const browser = await launchBrowser();
    try {
      const { page, errors, blocked } = await openGuarded(browser, {
        allow: (u) => /^(data|file):/.test(u),
        viewport: { width: 1400, height: 1000 },
      });
      // A CSP violation is reported as a console error; securitypolicyviolation events are collected as well.
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (e) =>
          console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`),
        );
      });
      await page.goto(pathToFileURL(out).href);
      await page.waitForFunction(() => document.documentElement.getAttribute('data-charts') === '6', null, {
        timeout: 20_000,
      });
      // Let uPlot's deferred first paint land.
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      const inked = async (): Promise<number[]> =>
        page.evaluate(() =>
          Array.from(document.querySelectorAll('.chart canvas')).map((c) => {
            const cv = c as HTMLCanvasElement;
            const d = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
            return n;
          }),
        );
      const before = await inked();
      assert.equal(before.length, 6, `${before.length} chart canvases`);
      for (const [i, n] of before.entries()) assert.ok(n > 200, `chart ${i} drew ${n} pixels`);
      const imgs = await page.evaluate(() =>
        Array.from(document.images).map((im) => ({ alt: im.alt, w: im.naturalWidth, ok: im.complete })),
      );
      assert.equal(imgs.length, 4, JSON.stringify(imgs));
      for (const im of imgs) assert.ok(im.ok && im.w > 0, `${im.alt} did not decode`);
      // Two runs overlaid: the loss chart's legend lists both runs' series.
      const legend = await page.evaluate(() => document.querySelector('#chart-loss .u-legend')?.textContent ?? '');
      assert.match(legend, /lr-0\.06: loss/);
      assert.match(legend, /lr-0\.03: loss/);
      // The x-axis switch and the smoothing slider rebuild the charts, which draw again.
      await page.check('input[name=xaxis][value=epoch]');
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      assert.match(
        await page.evaluate(() => document.querySelector('#chart-loss .u-legend')?.textContent ?? ''),
        /epoch/,
      );
      await page.fill('#smoothing', '0.9');
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      assert.equal(await page.textContent('#smoothing-value'), '0.90');
      for (const [i, n] of (await inked()).entries())
        assert.ok(n > 200, `after switching, chart ${i} drew ${n} pixels`);
      await page.check('input[name=xaxis][value=wall]');
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      await page.screenshot({ path: join(root, 'report.png'), fullPage: true });
      assert.ok(readFileSync(join(root, 'report.png')).length > 10_000);
      assert.deepEqual(errors, []);
      assert.deepEqual(blocked, []);
    } finally {
      await browser.close();
    }
  },
);

test('report errors name the folder and what a run directory needs', () => {
  const empty = tmpDir();
  assert.throws(() => loadReportRun(empty), /is not a run directory: it needs config\.json and metrics\.jsonl/);
  assert.throws(() => loadReportRun(join(empty, 'nope')), /run '.*nope' not found/);
  assert.throws(() => renderReport([]), /at least one run/);
});
