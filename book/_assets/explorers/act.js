/* The activation explorer, live in the published page (issue 11).
 *
 * For every <div data-cnnbook-live="act"> (cnnbook_book.activations.
 * live_curve_explorer) it evaluates the chosen activation f and its derivative f′ on
 * `points` equally spaced x in [−r, r] (as numpy.linspace), with the formulas of
 * cnnbook.functional: sigmoid through e^(−|x|), GELU exact as x·Φ(x) with the erf
 * series of cnnbook.functional.erf (clipped to ±6, int(2·max a²) + 30 terms for the
 * array evaluated), f′ as the backward pass with dy = 1. It shades the saturated
 * region |f′| < threshold and prints f(x), f′(x) at the chosen x and the saturated
 * share of the grid. The last result is el.cnnbookLast for the browser tests.
 * Needs common.js. */
(function () {
  "use strict";
  const L = window.cnnbookLive;
  const SQRT_HALF = 0.7071067811865476;
  const TWO_OVER_SQRT_PI = 1.1283791670955126;
  const INV_SQRT_2PI = 0.3989422804014327;

  // cnnbook.functional.erf on an array: the positive-term series, one term count
  function erf(xs) {
    const a = xs.map((x) => Math.max(-6, Math.min(6, x)));
    const peak = a.reduce((m, v) => Math.max(m, v * v), 0);
    const terms = Math.floor(2 * peak) + 30;
    return a.map((v) => {
      const a2 = v * v;
      let term = v;
      let total = v;
      for (let n = 1; n < terms; n++) {
        term = (term * (2 * a2)) / (2 * n + 1);
        total += term;
      }
      return TWO_OVER_SQRT_PI * Math.exp(-a2) * total;
    });
  }

  // name -> (xs) => [f, f′] (arrays), as the package's forward and backward passes
  function curves(cfg) {
    const slope = cfg.leaky_slope;
    const alpha = cfg.elu_alpha;
    const each = (fn) => (xs) => {
      const f = [];
      const d = [];
      for (const x of xs) {
        const [a, b] = fn(x);
        f.push(a);
        d.push(b);
      }
      return [f, d];
    };
    const sigmoid = (x) => {
      const e = Math.exp(-Math.abs(x));
      return x >= 0 ? 1 / (1 + e) : e / (1 + e);
    };
    return {
      relu: each((x) => [Math.max(x, 0), x > 0 ? 1 : 0]),
      leaky_relu: each((x) => (x > 0 ? [x, 1] : [slope * x, slope])),
      sigmoid: each((x) => {
        const y = sigmoid(x);
        return [y, y * (1 - y)];
      }),
      tanh: each((x) => {
        const y = Math.tanh(x);
        return [y, 1 - y * y];
      }),
      gelu: (xs) => {
        const e = erf(xs.map((x) => x * SQRT_HALF));
        const cdf = e.map((v) => 0.5 * (1 + v));
        const f = xs.map((x, i) => x * cdf[i]);
        const d = xs.map((x, i) => cdf[i] + x * (INV_SQRT_2PI * Math.exp(-0.5 * x * x)));
        return [f, d];
      },
      silu: each((x) => {
        const s = 1 / (1 + Math.exp(-x));
        return [x * s, s * (1 + x * (1 - s))];
      }),
      elu: each((x) => {
        const e = alpha * (Math.exp(Math.min(x, 0)) - 1);
        return x > 0 ? [x, 1] : [e, e + alpha];
      }),
    };
  }

  L.start("act", (el, cfg, q) => {
    const fns = curves(cfg);
    const ctl = {};
    for (const n of ["activation", "range", "threshold", "at"]) ctl[n] = q(`[name="${n}"]`);
    const canvas = q("canvas.curve");
    const out = q(".cnnbook-live-formula");

    function update() {
      const name = ctl.activation.value;
      const r = Number(ctl.range.value);
      const thr = 10 ** Number(ctl.threshold.value);
      const at = Number(ctl.at.value);
      const n = cfg.points;
      const step = (2 * r) / (n - 1);
      const xs = Array.from({ length: n }, (_, i) => (i === n - 1 ? r : i * step - r));
      const [f, d] = fns[name](xs);
      const [[f0], [d0]] = fns[name]([at]);
      // saturated runs of the grid: [first x, last x]
      const runs = [];
      let count = 0;
      for (let i = 0; i < n; i++) {
        if (!(Math.abs(d[i]) < thr)) continue;
        count++;
        const last = runs[runs.length - 1];
        if (last && last.end === i - 1) last.end = i;
        else runs.push({ start: i, end: i });
      }
      const intervals = runs.map((u) => [xs[u.start], xs[u.end]]);
      const share = count / n;
      let lo = Math.min(...f, ...d);
      let hi = Math.max(...f, ...d);
      const pad = 0.06 * (hi - lo || 1);
      lo -= pad;
      hi += pad;
      const half = step / 2;
      const { tx, ty } = L.plot(canvas, {
        xlim: [-r, r],
        ylim: [lo, hi],
        xlabel: "x",
        hline: 0,
        shade: intervals.map(([a, b]) => [Math.max(-r, a - half), Math.min(r, b + half)]),
        series: [
          { x: xs, y: f, color: "#1a5f9e", width: 2 },
          { x: xs, y: d, color: "#b35300", width: 2, dash: [6, 3] },
        ],
      });
      if (Math.abs(at) <= r) {
        const ctx = canvas.getContext("2d");
        ctx.strokeStyle = "#000";
        for (const v of [f0, d0]) ctx.strokeRect(tx(at) - 4, ty(v) - 4, 8, 8);
      }
      const where = intervals.length
        ? intervals.map(([a, b]) => `[${a.toFixed(2)}, ${b.toFixed(2)}]`).join(" ∪ ")
        : "nowhere";
      for (const [k, v] of [["range", r], ["threshold", L.fmt(thr, 4)], ["at", at.toFixed(2)]])
        q(`output[name="${k}-value"]`).value = k === "range" ? String(v) : v;
      out.textContent =
        `${name}: f(${at.toFixed(2)}) = ${L.fmt(f0, 6)}, f′(${at.toFixed(2)}) = ${L.fmt(d0, 6)}\n` +
        `|f′| < ${L.fmt(thr, 4)} on ${(100 * share).toFixed(1)} % of [−${r}, ${r}] ` +
        `(${count} of ${n} points): ${where}`;
      el.cnnbookLast = {
        activation: name, range: r, threshold: thr, at, points: n, x: xs, f, d,
        fAt: f0, dAt: d0, saturated: share, count, intervals,
      };
    }

    ctl.activation.addEventListener("change", update);
    for (const n of ["range", "threshold", "at"]) ctl[n].addEventListener("input", update);
    update();
  });
})();
