// A run report: one self-contained HTML file a person can open offline, mail or attach — the run's header,
// summary cards, interactive charts (uPlot, inlined from node_modules), the config, the checkpoints and the
// images the run wrote. With several runs: the charts overlaid, one colour a run, and a table of what differs.
// Nothing is fetched: images are data URIs, the data an escaped JSON block, and a Content-Security-Policy
// allows only this page's own (hashed) script and style.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { writeTextAtomic } from '../io/atomic.js';
import { loadReportRun, type ReportRun } from './report-data.js';
import { REPORT_SCRIPT } from './report-script.js';

export interface ReportOpts {
  /** Page title; default `moco report: <run names>`. */
  title?: string;
}

const COLORS = ['#1f6fd1', '#d1341f', '#1f9d4a', '#8a3fd1', '#e08a00', '#12a3b5', '#8c564b', '#d63fa0'];

// Inline style attributes would need 'unsafe-inline' under the CSP: run colours are classes.
const runClass = (i: number): string => `run-${i % COLORS.length}`;
const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const sha256 = (s: string): string => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;

/** uPlot's minified script and CSS from node_modules, read when a report is written. */
function uplotAssets(): { js: string; css: string } {
  const req = createRequire(import.meta.url);
  const dir = dirname(req.resolve('uplot/package.json'));
  return {
    js: readFileSync(join(dir, 'dist', 'uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(join(dir, 'dist', 'uPlot.min.css'), 'utf8'),
  };
}

/** JSON safe inside a <script> element: no `<` (so no `</script>` or `<!--`), no line separators JavaScript rejects. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const fmt = (v: number | null | undefined, digits = 2, unit = ''): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(digits)}${unit}`;

function duration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    sec = Math.round(s % 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${sec} s` : `${s.toFixed(1)} s`;
}

function bytes(n: number): string {
  return n >= 1 << 30
    ? `${(n / (1 << 30)).toFixed(2)} GiB`
    : n >= 1 << 20
      ? `${(n / (1 << 20)).toFixed(1)} MiB`
      : `${(n / 1024).toFixed(1)} KiB`;
}

const png = (b: Buffer | undefined): string | null => (b ? `data:image/png;base64,${b.toString('base64')}` : null);

/** The command as typed: `moco …` for the CLI, else the script and its arguments (a library call). */
function commandLine(argv: readonly string[]): string {
  const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
  const [script, ...args] = argv;
  if (script && /cli[\\/]main\.js$/.test(script)) return ['moco', ...args].map(quote).join(' ');
  return `${argv.map(quote).join(' ')} (pretrain() called from this script)`;
}

function stateBadge(r: ReportRun): string {
  const s = r.info?.state ?? 'unknown';
  // A run killed outright (SIGKILL, power) never wrote its end: it still says running.
  const label = s === 'running' ? 'running (or killed)' : s;
  return `<span class="state state-${esc(s)}" title="${esc(r.info?.reason ?? '')}">${esc(label)}${r.info?.reason ? `: ${esc(r.info.reason)}` : ''}</span>`;
}

function header(r: ReportRun, i: number): string {
  const inf = r.info;
  const rows: [string, string][] = [
    ['data', esc(String(r.config.data ?? '–'))],
    ['command', inf ? `<code>${esc(commandLine(inf.command))}</code>` : '–'],
    [
      'versions',
      inf
        ? esc(`moco-ts ${inf.versions.mocoTs}, Node.js ${inf.versions.node}, libtorch ${inf.versions.libtorch}`)
        : '–',
    ],
    ['device', inf ? esc(`${inf.device} on ${inf.host}`) : esc(String(r.config.device ?? '–'))],
    ['started', inf ? esc(inf.started.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')) : '–'],
    [
      'duration',
      `${duration(r.summary.durationS)}${inf && inf.sessions > 1 ? ` in ${inf.sessions} sessions (resumed ${inf.sessions - 1}×)` : ''}`,
    ],
    ['state', stateBadge(r)],
    ['steps', `${r.summary.stepsDone}${inf ? ` of ${inf.totalSteps}` : ''} (${r.stepsPerEpoch} an epoch)`],
    ['directory', `<code>${esc(r.dir)}</code>`],
  ];
  return `<section class="run-header ${runClass(i)}"><h2><span class="swatch"></span>${esc(r.name)}</h2>
<table class="kv">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table></section>`;
}

function cards(r: ReportRun): string {
  const s = r.summary;
  const card = (label: string, value: string, sub = ''): string =>
    `<div class="card"><div class="label">${label}</div><div class="value">${value}</div>${sub ? `<div class="sub">${sub}</div>` : ''}</div>`;
  return `<div class="cards">${[
    card(
      'kNN top-1, best',
      fmt(s.knnBest, 2, '%'),
      s.knnInit !== null ? `random encoder: ${fmt(s.knnInit, 2, '%')}` : 'kNN monitor off (--knn-every)',
    ),
    card('kNN top-1, last', fmt(s.knnLast, 2, '%')),
    card(
      'linear top-1',
      fmt(s.linearTop1, 2, '%'),
      s.linearTop1 === null
        ? 'no moco lincls --out in this directory'
        : esc(r.lincls.map((l) => `${l.folder}: ${l.protocol}, ${l.epochs} epochs`).join('; ')),
    ),
    ...(s.onlineTop1 !== null
      ? [card('online probe top-1', fmt(s.onlineTop1, 2, '%'), 'linear, trained alongside')]
      : []),
    card('final loss', fmt(s.finalLoss, 4), s.finalAcc1 !== null ? `acc1 ${fmt(s.finalAcc1, 1, '%')}` : ''),
    card('images/s', fmt(s.imagesPerSec, 1), 'median over steps'),
  ].join('')}</div>`;
}

function images(r: ReportRun): string {
  const parts: string[] = [];
  const a = png(r.images.augmentPreview);
  if (a)
    parts.push(
      `<figure><img alt="augmentation preview of ${esc(r.name)}" src="${a}"><figcaption>augmentation preview: each row an image, then its two augmented views (query, key)</figcaption></figure>`,
    );
  const n = png(r.images.knnNeighbours);
  if (n)
    parts.push(
      `<figure><img alt="nearest neighbours of ${esc(r.name)}" src="${n}"><figcaption>nearest neighbours at the last kNN evaluation: the query (blue) and its 5 most similar training images (green: same class, red: another)</figcaption></figure>`,
    );
  return parts.length
    ? `<div class="figures">${parts.join('')}</div>`
    : '<p class="none">no images (the run wrote no augmentation preview or kNN grid)</p>';
}

function checkpointTable(r: ReportRun): string {
  if (!r.checkpoints.length) return '<p class="none">no checkpoints</p>';
  return `<table class="list"><tr><th>file</th><th>size</th><th>written</th></tr>${r.checkpoints.map((c) => `<tr><td><code>${esc(c.name)}</code>${c.last ? ' <span class="tag">last</span>' : ''}</td><td>${bytes(c.bytes)}</td><td>${esc(c.modified.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</td></tr>`).join('')}</table>`;
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

/** The settings that differ between runs (out aside: it always does) and their final metrics. */
function comparison(runs: ReportRun[]): string {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))].filter((k) => k !== 'out');
  const differing = keys.filter((k) => new Set(runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1);
  const head = `<tr><th></th>${runs.map((r, i) => `<th><span class="swatch ${runClass(i)}"></span>${esc(r.name)}</th>`).join('')}</tr>`;
  const row = (label: string, cells: string[]): string =>
    `<tr><th>${label}</th>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  const settings = differing.length
    ? differing
        .map((k) =>
          row(
            esc(k),
            runs.map((r) => esc(show(r.config[k] ?? '–'))),
          ),
        )
        .join('')
    : `<tr><td colspan="${runs.length + 1}" class="none">all settings equal</td></tr>`;
  const m = (f: (r: ReportRun) => string): string[] => runs.map(f);
  const metrics = [
    row('state', m(stateBadge)),
    row(
      'steps',
      m((r) => String(r.summary.stepsDone)),
    ),
    row(
      'final loss',
      m((r) => fmt(r.summary.finalLoss, 4)),
    ),
    row(
      'final acc1',
      m((r) => fmt(r.summary.finalAcc1, 1, '%')),
    ),
    row(
      'kNN top-1 best',
      m((r) => fmt(r.summary.knnBest, 2, '%')),
    ),
    row(
      'kNN top-1 last',
      m((r) => fmt(r.summary.knnLast, 2, '%')),
    ),
    row(
      'linear top-1',
      m((r) => fmt(r.summary.linearTop1, 2, '%')),
    ),
    row(
      'online probe top-1',
      m((r) => fmt(r.summary.onlineTop1, 2, '%')),
    ),
    row(
      'images/s',
      m((r) => fmt(r.summary.imagesPerSec, 1)),
    ),
    row(
      'duration',
      m((r) => duration(r.summary.durationS)),
    ),
  ].join('');
  return `<section><h2>Comparison</h2><div class="cmp"><table class="list cmp-settings"><caption>settings that differ</caption>${head}${settings}</table>
<table class="list cmp-metrics"><caption>final metrics</caption>${head}${metrics}</table></div></section>`;
}

const STYLE = `
:root{--fg:#1d2330;--muted:#667085;--line:#e2e6ee;--bg:#f6f7fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:20px 28px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 10px}section>h2:first-child{margin-top:0}
.sub-title{color:var(--muted);margin-bottom:14px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:14px 0}
.swatch{display:inline-block;width:12px;height:12px;border-radius:3px;background:var(--run);margin-right:8px;vertical-align:-1px}
.run-header h2{margin-top:0}
table.kv th{text-align:left;color:var(--muted);font-weight:500;padding:2px 18px 2px 0;vertical-align:top;white-space:nowrap}
table.kv td{padding:2px 0;word-break:break-all}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px;margin-top:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fbfcfe}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.card .value{font-size:24px;font-weight:600;margin-top:2px}
.card .sub{color:var(--muted);font-size:12px}
.state{padding:1px 8px;border-radius:10px;font-size:12.5px;background:#eef}
.state-finished{background:#dff3e4;color:#176b32}.state-interrupted{background:#fff1d6;color:#8a5a00}
.state-diverged{background:#fde0dc;color:#a02010}.state-running,.state-unknown{background:#e9ecf3;color:#445}
.controls{display:flex;gap:26px;align-items:center;flex-wrap:wrap;margin-bottom:6px}
.controls label{margin-right:10px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.chart{min-height:300px}
.figures{display:flex;gap:20px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0;max-width:100%}figure img{max-width:100%;image-rendering:pixelated;border:1px solid var(--line)}
figcaption{color:var(--muted);font-size:12.5px;max-width:520px}
table.list{border-collapse:collapse;margin:6px 0 10px}
table.list th,table.list td{border-bottom:1px solid var(--line);padding:4px 14px 4px 0;text-align:left;vertical-align:top}
table.list caption{text-align:left;color:var(--muted);padding-bottom:4px}
.cmp{display:flex;gap:40px;flex-wrap:wrap;align-items:flex-start}
.tag{font-size:11px;background:#e6eefc;color:#1f4fa0;border-radius:8px;padding:0 6px}
.none{color:var(--muted)}
pre{background:#f3f5f9;border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;font-size:12.5px;max-height:420px}
details summary{cursor:pointer;margin:6px 0}
`;

/** The report page of `runs` (see {@link loadReportRun}) as one HTML string. */
export function renderReport(runs: readonly ReportRun[], o: ReportOpts = {}): string {
  if (!runs.length) throw new Error('a report needs at least one run directory');
  const { js: uplotJs, css: uplotCss } = uplotAssets();
  const title = o.title ?? `moco report: ${runs.map((r) => r.name).join(', ')}`;
  const data = {
    runs: runs.map((r) => ({
      name: r.name,
      dim: typeof r.config.dim === 'number' ? r.config.dim : null,
      steps: r.steps,
      knn: r.knn,
    })),
  };
  const many = runs.length > 1;
  const style = `${uplotCss}\n${STYLE}${COLORS.map((c, i) => `.run-${i}{--run:${c}}`).join('')}\n`;
  const csp = [
    "default-src 'none'",
    'img-src data:',
    `style-src ${sha256(style)}`,
    `script-src ${sha256(uplotJs)} ${sha256(REPORT_SCRIPT)}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  const perRun = runs.map((r, i) => `${header(r, i)}`).join('\n');
  const body = `
<h1>${esc(title)}</h1>
<div class="sub-title">MoCo pre-training ${many ? `runs compared (${runs.length})` : 'run'} · written ${esc(
    new Date()
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, ' UTC'),
  )}</div>
${perRun}
${many ? comparison([...runs]) : `<section><h2>Summary</h2>${cards(runs[0]!)}</section>`}
<section><h2>Charts</h2>
<div class="controls">
  <div>x-axis:
    <label><input type="radio" name="xaxis" value="step" checked> step</label>
    <label><input type="radio" name="xaxis" value="epoch"> epoch</label>
    <label><input type="radio" name="xaxis" value="wall"> wall time</label>
  </div>
  <div><label for="smoothing">smoothing</label><input id="smoothing" type="range" min="0" max="0.99" step="0.01" value="0.6"> <span id="smoothing-value">0.60</span></div>
  <div class="none">drag to zoom, double-click to reset</div>
</div>
<div class="charts">
  <div class="chart" id="chart-loss"></div><div class="chart" id="chart-acc"></div>
  <div class="chart" id="chart-lr"></div><div class="chart" id="chart-perf"></div>
  <div class="chart" id="chart-knn"></div><div class="chart" id="chart-embed"></div>
  ${runs.some((r) => r.summary.onlineTop1 !== null) ? '<div class="chart" id="chart-online"></div>' : ''}
</div></section>
${runs.map((r, i) => `<section><h2><span class="swatch ${runClass(i)}"></span>${many ? `${esc(r.name)}: ` : ''}images</h2>${images(r)}</section>`).join('\n')}
${runs
  .map(
    (
      r,
      i,
    ) => `<section><h2><span class="swatch ${runClass(i)}"></span>${many ? `${esc(r.name)}: ` : ''}config and checkpoints</h2>
<details${many ? '' : ' open'}><summary>config.json</summary><pre>${esc(JSON.stringify(r.config, null, 2))}</pre></details>
<h3>checkpoints</h3>${checkpointTable(r)}</section>`,
  )
  .join('\n')}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${style}</style>
</head><body>
${body}
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${uplotJs}</script>
<script>${REPORT_SCRIPT}</script>
</body></html>
`;
}

/** Reads the run directories `dirs`, renders their report and writes it to `out` atomically. Returns the runs. */
export function writeReport(dirs: readonly string[], out: string, o: ReportOpts = {}): ReportRun[] {
  if (!dirs.length) throw new Error('moco report needs at least one run directory');
  const runs = dirs.map(loadReportRun);
  // Two runs with the same directory name (a/run, b/run) are told apart by their parent.
  const names = runs.map((r) => r.name);
  for (const r of runs)
    if (names.filter((n) => n === r.name).length > 1) r.name = `${basename(dirname(r.dir))}/${r.name}`;
  writeTextAtomic(out, renderReport(runs, o));
  return runs;
}
