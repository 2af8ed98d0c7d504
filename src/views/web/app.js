// The moco page: the model's recorded preprocessing (model.json: /v1/info under `moco serve`, a file in a static
// export) is repeated on a canvas, the image is embedded here with onnxruntime-web (WebAssembly), and its
// nearest neighbours come from the server's /v1/search, or from the bundled gallery of a static export.
import * as ort from './ort/ort.wasm.min.mjs';

const $ = (id) => document.getElementById(id);
const status = (text, state) => {
  const s = $('status');
  s.textContent = text;
  if (state) s.dataset.state = state;
};
const TOP = 8;

/** The source rectangle, exactly as the server's sourceBox (src/serve/preprocess.ts) rounds it. */
export function sourceBox(width, height, p) {
  if (p.resize === null || p.resize === undefined) return { left: 0, top: 0, width, height };
  const s = p.resize / Math.min(width, height);
  const cw = Math.min(width, p.size / s),
    ch = Math.min(height, p.size / s);
  const left = Math.round((width - cw) / 2),
    top = Math.round((height - ch) / 2);
  return {
    left,
    top,
    width: Math.min(width - left, Math.max(1, Math.round(cw))),
    height: Math.min(height - top, Math.max(1, Math.round(ch))),
  };
}

/** An image → 1×3×size×size float32, normalised with the recorded mean/std; also drawn on the visible canvas. */
function toInput(bitmap, p) {
  const size = p.size;
  const b = sourceBox(bitmap.width, bitmap.height, p);
  const canvas = $('input');
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, b.left, b.top, b.width, b.height, 0, 0, size, size);
  $('input-caption').textContent = `model input: ${b.width}×${b.height} px at (${b.left}, ${b.top}) → ${size}×${size}`;
  const rgba = ctx.getImageData(0, 0, size, size).data;
  const plane = size * size;
  const x = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) x[c * plane + i] = (rgba[i * 4 + c] / 255 - p.mean[c]) / p.std[c];
  }
  return new ort.Tensor('float32', x, [1, 3, size, size]);
}

function cosineTop(q, items, top) {
  const norm = (v) => Math.hypot(...v) || 1;
  const qn = norm(q);
  return items
    .map((it, row) => {
      let d = 0;
      for (let i = 0; i < q.length; i++) d += q[i] * it.vector[i];
      return { row, path: it.name, label: it.label ?? null, score: d / (qn * norm(it.vector)), thumbnail: it.thumb };
    })
    .sort((a, b) => b.score - a.score)
    .slice(0, top);
}

function showHits(hits, title) {
  $('results-title').textContent = title;
  const ol = $('hits');
  ol.replaceChildren(
    ...hits.map((h) => {
      const li = document.createElement('li');
      li.className = 'hit';
      const img = document.createElement('img');
      img.src = h.thumbnail;
      img.alt = h.path;
      img.loading = 'eager';
      const line = document.createElement('div');
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = h.score.toFixed(4);
      line.append(score);
      if (h.label) {
        const label = document.createElement('span');
        label.className = 'label';
        label.textContent = h.label;
        line.append(label);
      }
      const path = document.createElement('div');
      path.className = 'path';
      path.textContent = h.path.split('/').pop();
      path.title = h.path;
      li.append(img, line, path);
      return li;
    }),
  );
}

async function main() {
  const info = await (await fetch('model.json')).json();
  const p = info.preprocessing;
  const geometry =
    p.resize === null ? `stretched to ${p.size}×${p.size}` : `shorter side ${p.resize}, center crop ${p.size}`;
  $('model').textContent =
    `${info.model.arch} · ${info.dim}-d ${info.model.feature} · ${geometry} · ${info.server ? (info.index ? `index of ${info.index.size} images` : 'no index') : `static page, gallery of ${info.gallerySize ?? 0}`}`;
  $('footer').textContent += info.server
    ? " Only its vector is sent, to the server's /v1/search."
    : ' Neighbours come from the gallery bundled with this page.';
  // Threads need cross-origin isolation (the server sends COOP/COEP); a plain static server gets one thread.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
  status('loading the model into onnxruntime-web…', 'loading');
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(info.model.onnx, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  const gallery = info.server ? null : info.gallery ? (await (await fetch(info.gallery)).json()).items : [];
  status(
    `ready (model loaded in ${Math.round(performance.now() - t0)} ms, ${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads > 1 ? 's' : ''})`,
    'ready',
  );

  async function embedFile(file) {
    status(`embedding ${file.name}…`, 'working');
    const url = URL.createObjectURL(file);
    if ($('preview').src.startsWith('blob:')) URL.revokeObjectURL($('preview').src);
    $('preview').src = url;
    $('preview').classList.add('shown');
    const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
    const input = toInput(bitmap, p);
    bitmap.close();
    const t = performance.now();
    const out = await session.run({ [session.inputNames[0]]: input });
    const vector = Array.from(out[session.outputNames[0]].data);
    const ms = performance.now() - t;
    $('vector').textContent = `${vector.length}-d: [${vector
      .slice(0, 6)
      .map((v) => v.toFixed(3))
      .join(', ')}, …] in ${ms.toFixed(0)} ms`;
    let hits = [];
    if (info.server && info.index) {
      const r = await fetch('v1/search', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ vector, top: TOP }),
      });
      if (!r.ok) throw new Error(`search: ${r.status} ${(await r.json()).message}`);
      hits = (await r.json()).results[0].neighbours;
      showHits(hits, `Nearest neighbours in the server's index (${info.index.size} images)`);
    } else if (gallery && gallery.length) {
      hits = cosineTop(vector, gallery, TOP);
      showHits(hits, `Nearest neighbours in the bundled gallery (${gallery.length} images)`);
    } else {
      showHits(
        [],
        info.server
          ? 'No index on this server (start moco serve with --index)'
          : 'No gallery bundled (export with --gallery DIR)',
      );
    }
    window.mocoLast = { name: file.name, vector, hits, ms };
    status(`${file.name}: embedded in the browser, ${hits.length} neighbours`, 'done');
  }

  const run = (file) =>
    embedFile(file).catch((e) => {
      status(e.message, 'error');
      console.error(e);
    });
  $('file').addEventListener('change', (e) => {
    const f = e.target.files[0];
    if (f) run(f);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer.files[0];
    if (f) run(f);
  });
}

main().catch((e) => {
  status(`could not start: ${e.message}`, 'error');
  console.error(e);
});
