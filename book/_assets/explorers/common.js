/* Helpers shared by the live explorers (issue 11), loaded before them on any page
 * that holds one (book/_ext/cnnbook_reader.py). window.cnnbookLive offers:
 *   decode(d)            float32 JSON of cnnbook_book.live.encode_array -> {shape, data}
 *   start(kind, setup)   run setup(el, cfg, q) on every <div data-cnnbook-live=kind>
 *                        once the page is parsed, then show its controls
 *   plot(canvas, spec)   a line plot on a canvas: axes with tick labels (12 px), a
 *                        linear or log10 y axis, series, bands and shaded x intervals
 *   fmt(v, digits)       a number as the explorers print it (2.5e-07, 0.3457)
 *   range(a)             [min, max] of an array
 *   grey(canvas, data, h, w, lo, hi)
 *                        an h x w image in grey, lo black and hi white (default: the
 *                        data's own range, as matplotlib's imshow scales it)
 * No dependencies. */
(function () {
  "use strict";

  function decode(d) {
    const bin = atob(d.f32);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return { shape: d.shape, data: new Float32Array(bytes.buffer) };
  }

  function start(kind, setup) {
    const run = () =>
      document.querySelectorAll(`[data-cnnbook-live="${kind}"]`).forEach((el) => {
        const cfg = JSON.parse(el.querySelector("script.cnnbook-live-data").textContent);
        const q = (sel) => el.querySelector(sel);
        setup(el, cfg, q);
        q(".cnnbook-live-fallback").hidden = true;
        q(".cnnbook-live-body").hidden = false;
      });
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  }

  function fmt(v, digits = 4) {
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
    return v.toFixed(digits);
  }

  function range(a) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of a) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    return [lo, hi];
  }

  function grey(canvas, data, h, w, lo, hi) {
    if (lo === undefined) [lo, hi] = range(data);
    canvas.width = w;
    canvas.height = h;
    const scale = hi > lo ? 255 / (hi - lo) : 0;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(w, h);
    for (let n = 0; n < h * w; n++) {
      const g = Math.round((data[n] - lo) * scale);
      img.data[4 * n] = img.data[4 * n + 1] = img.data[4 * n + 2] = g;
      img.data[4 * n + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  // round tick positions covering [lo, hi]
  function ticks(lo, hi, n) {
    const step0 = (hi - lo) / n;
    const mag = 10 ** Math.floor(Math.log10(step0));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step)
      out.push(Math.abs(t) < 1e-12 * step ? 0 : t);
    return out;
  }

  /* spec: {xlim: [a, b], ylim: [c, d] (log10 of the values when log), log: bool,
   *        xlabel, ylabel, shade: [[x0, x1], ...], hline: y,
   *        bands: [{x, lo, hi, color}], series: [{x, y, color, width, dash, marker}]}
   * Values <= 0 on a log axis are drawn at the bottom. */
  function plot(canvas, spec) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width;
    const H = canvas.height;
    const m = { l: 48, r: 8, t: 8, b: 34 };
    const [x0, x1] = spec.xlim;
    const [y0, y1] = spec.ylim;
    const tx = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
    const yv = (y) => (spec.log ? (y > 0 ? Math.log10(y) : y0) : y);
    const ty = (y) => {
      const v = Math.max(y0, Math.min(y1, yv(y)));
      return H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
    };
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = "rgba(120, 120, 120, 0.22)";
    for (const [a, b] of spec.shade || [])
      ctx.fillRect(tx(a), m.t, tx(b) - tx(a), H - m.t - m.b);
    ctx.font = "12px sans-serif";
    ctx.fillStyle = "#222";
    ctx.strokeStyle = "#ddd";
    ctx.lineWidth = 1;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of ticks(x0, x1, 6)) {
      ctx.beginPath();
      ctx.moveTo(tx(t), m.t);
      ctx.lineTo(tx(t), H - m.b);
      ctx.stroke();
      ctx.fillText(String(Number(t.toPrecision(3))), tx(t), H - m.b + 3);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const yt = spec.log
      ? ticks(y0, y1, 5).filter((t) => Number.isInteger(t))
      : ticks(y0, y1, 5);
    for (const t of yt) {
      const y = spec.log ? 10 ** t : t;
      ctx.beginPath();
      ctx.moveTo(m.l, ty(y));
      ctx.lineTo(W - m.r, ty(y));
      ctx.stroke();
      ctx.fillText(spec.log ? `1e${t}` : String(Number(t.toPrecision(3))), m.l - 3, ty(y));
    }
    if (spec.hline !== undefined) {
      ctx.strokeStyle = "#888";
      ctx.beginPath();
      ctx.moveTo(m.l, ty(spec.hline));
      ctx.lineTo(W - m.r, ty(spec.hline));
      ctx.stroke();
    }
    for (const b of spec.bands || []) {
      ctx.fillStyle = b.color;
      ctx.beginPath();
      b.x.forEach((x, i) => ctx.lineTo(tx(x), ty(b.hi[i])));
      for (let i = b.x.length - 1; i >= 0; i--) ctx.lineTo(tx(b.x[i]), ty(b.lo[i]));
      ctx.closePath();
      ctx.fill();
    }
    for (const s of spec.series || []) {
      ctx.strokeStyle = ctx.fillStyle = s.color;
      ctx.lineWidth = s.width || 1.5;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      s.x.forEach((x, i) => (i ? ctx.lineTo(tx(x), ty(s.y[i])) : ctx.moveTo(tx(x), ty(s.y[i]))));
      ctx.stroke();
      ctx.setLineDash([]);
      if (s.marker)
        s.x.forEach((x, i) => ctx.fillRect(tx(x) - 2, ty(s.y[i]) - 2, 4, 4));
    }
    ctx.strokeStyle = "#444";
    ctx.lineWidth = 1;
    ctx.strokeRect(m.l, m.t, W - m.l - m.r, H - m.t - m.b);
    ctx.fillStyle = "#222";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    if (spec.xlabel) ctx.fillText(spec.xlabel, (m.l + W - m.r) / 2, H - 1);
    return { tx, ty };
  }

  window.cnnbookLive = { decode, start, plot, fmt, ticks, range, grey };
})();
