// The report page's own script (runs in the browser, after uPlot): reads the JSON data block and draws the
// charts, one colour a run; the x-axis switch (step / epoch / wall time) and the loss smoothing slider rebuild them.
// Plain ES2020 in a string: the page is one self-contained file and this is inlined into it as is.

export const REPORT_SCRIPT = String.raw`
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var COLORS = ['#1f6fd1', '#d1341f', '#1f9d4a', '#8a3fd1', '#e08a00', '#12a3b5', '#8c564b', '#d63fa0'];
  var X_LABEL = { step: 'step', epoch: 'epoch', wall: 'wall time (min)' };
  var state = { x: 'step', smoothing: 0.6 };
  var charts = [];
  var sync = uPlot.sync('moco-report');

  function color(i) { return COLORS[i % COLORS.length]; }
  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }
  // TensorBoard's smoothing: an exponential moving average, debiased for its first values.
  function ema(ys, w) {
    var out = [], last = 0, n = 0;
    for (var i = 0; i < ys.length; i++) {
      var y = ys[i];
      if (y === null || !isFinite(y)) { out.push(null); continue; }
      last = last * w + (1 - w) * y;
      n++;
      out.push(w > 0 ? last / (1 - Math.pow(w, n)) : y);
    }
    return out;
  }
  function xs(src) {
    if (state.x === 'wall') return src.wall.map(function (s) { return s / 60; });
    return src[state.x];
  }
  function constant(len, v) { var a = []; for (var i = 0; i < len; i++) a.push(v); return a; }

  // Each chart: where its rows come from (steps or knn) and the series of one run.
  var SPECS = [
    { id: 'chart-loss', title: 'train/loss (InfoNCE)', src: 'steps', series: function (r) {
      return [
        { label: 'loss', y: r.steps.loss, width: 1, a: 0.25 },
        { label: 'loss, smoothed', y: ema(r.steps.loss, state.smoothing), width: 2 },
      ];
    } },
    { id: 'chart-acc', title: 'train/acc1 and acc5 (%, positive among 1+K)', src: 'steps', series: function (r) {
      return [
        { label: 'acc1', y: ema(r.steps.acc1, state.smoothing), width: 2 },
        { label: 'acc5', y: ema(r.steps.acc5, state.smoothing), width: 1.5, dash: [6, 4] },
      ];
    } },
    { id: 'chart-lr', title: 'train/lr', src: 'steps', series: function (r) {
      return [{ label: 'lr', y: r.steps.lr, width: 2 }];
    } },
    { id: 'chart-perf', title: 'perf: images/s (left), data wait and step ms (right)', src: 'steps', ms: true, series: function (r) {
      return [
        { label: 'images/s', y: r.steps.imagesPerSec, width: 2 },
        { label: 'data ms', y: r.steps.dataMs, width: 1, dash: [2, 3], scale: 'ms' },
        { label: 'step ms', y: r.steps.stepMs, width: 1, dash: [8, 3], scale: 'ms' },
      ];
    } },
    { id: 'chart-knn', title: 'eval/knn_top1 and online_val_top1 (%)', src: 'knn', points: true, series: function (r) {
      var s = [{ label: 'kNN top-1', y: r.knn.top1, width: 2 }];
      if (r.knn.onlineValTop1 && r.knn.onlineValTop1.some(function (v) { return v !== null; }))
        s.push({ label: 'online probe top-1 (test)', y: r.knn.onlineValTop1, width: 1.5, dash: [6, 4] });
      return s;
    } },
    { id: 'chart-online', title: 'eval/online_top1 (%, the online probe on training batches; --online-probe)', src: 'steps', points: true, series: function (r) {
      return [{ label: 'online probe top-1', y: r.steps.onlineTop1 || constant(r.steps.step.length, null), width: 2 }];
    } },
    { id: 'chart-embed', title: 'embed/std (healthy ≈ 1/√dim, dashed; collapse → 0)', src: 'steps', series: function (r) {
      return [
        { label: 'embed/std', y: ema(r.steps.embedStd, state.smoothing), width: 2 },
        { label: '1/√dim', y: constant(r.steps.step.length, r.dim ? 1 / Math.sqrt(r.dim) : null), width: 1, dash: [3, 3], a: 0.6 },
      ];
    } },
  ];

  function build(spec) {
    var el = document.getElementById(spec.id);
    if (!el) return;
    var tables = [], series = [{ label: X_LABEL[state.x] }];
    D.runs.forEach(function (r, i) {
      var src = r[spec.src];
      var ss = spec.series(r);
      tables.push([xs(src)].concat(ss.map(function (s) { return s.y; })));
      ss.forEach(function (s) {
        series.push({
          label: (D.runs.length > 1 ? r.name + ': ' : '') + s.label,
          stroke: s.a ? alpha(color(i), s.a) : color(i),
          width: s.width, dash: s.dash, scale: s.scale || 'y', spanGaps: true,
          points: { show: !!spec.points, size: 6, fill: color(i) },
        });
      });
    });
    var data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    var axes = [{ label: X_LABEL[state.x] }, { scale: 'y', size: 60 }];
    var scales = { x: { time: false } };
    if (spec.ms) {
      axes.push({ scale: 'ms', side: 1, size: 50, grid: { show: false }, label: 'ms' });
      scales.ms = { auto: true };
    }
    var opts = {
      title: spec.title, width: Math.max(300, el.clientWidth), height: 260,
      series: series, axes: axes, scales: scales,
      cursor: { sync: { key: sync.key } },
      legend: { live: true },
    };
    el.textContent = '';
    charts.push(new uPlot(opts, data, el));
  }

  function rebuild() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    SPECS.forEach(build);
    document.documentElement.setAttribute('data-charts', String(charts.length));
  }

  document.querySelectorAll('input[name=xaxis]').forEach(function (inp) {
    inp.addEventListener('change', function () { if (inp.checked) { state.x = inp.value; rebuild(); } });
  });
  var slider = document.getElementById('smoothing');
  var shown = document.getElementById('smoothing-value');
  slider.addEventListener('input', function () {
    state.smoothing = Number(slider.value);
    shown.textContent = state.smoothing.toFixed(2);
    rebuild();
  });
  var resizeTimer = 0;
  window.addEventListener('resize', function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(rebuild, 150); });
  rebuild();
})();
`;
