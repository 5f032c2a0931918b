/* The pooling explorer, live in the published page (issue 11).
 *
 * Finds every <div data-cnnbook-live="pool"> (written by
 * cnnbook_book.pooling.live_pool_explorer), reads its images (float32 JSON) and, on
 * every change of a control, pools the image and the image shifted dy rows down and
 * dx columns right (zero fill, cnnbook_book.convolution.shift) with max or average
 * pooling, window K, stride s, no padding (OH = (H - K) // s + 1, as
 * cnnbook.functional.max_pool2d_forward / avg_pool2d_forward), and measures the
 * change ||y' - y|| / ||y|| (the chapter's relative change) and the share of
 * pooled values that changed. Clicking a value of the shifted image's pooled map (or
 * focusing that map and pressing the arrow keys) shows where its gradient goes in the
 * shifted input: max pooling routes it whole to the window's maximum (the first in
 * row-major order on ties, as cnnbook.functional.max_pool2d_backward), average
 * pooling spreads 1/K^2 over the window. The last result is exposed as el.cnnbookLast for the
 * browser tests. No dependencies. */
(function () {
  "use strict";

  const { decode, grey: draw, range } = window.cnnbookLive;  // common.js, loaded first

  function shift(x, H, W, dy, dx) {
    const out = new Float64Array(H * W);
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) {
        const r0 = r - dy;
        const c0 = c - dx;
        if (r0 >= 0 && r0 < H && c0 >= 0 && c0 < W) out[r * W + c] = x[r0 * W + c0];
      }
    return out;
  }

  function pool(x, H, W, kind, K, s) {
    const OH = Math.floor((H - K) / s) + 1;
    const OW = Math.floor((W - K) / s) + 1;
    const y = new Float64Array(Math.max(OH, 0) * Math.max(OW, 0));
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++) {
        let acc = kind === "max" ? -Infinity : 0;
        for (let u = 0; u < K; u++)
          for (let v = 0; v < K; v++) {
            const val = x[(s * i + u) * W + s * j + v];
            acc = kind === "max" ? Math.max(acc, val) : acc + val;
          }
        y[i * OW + j] = kind === "max" ? acc : acc / (K * K);
      }
    return { OH, OW, y };
  }

  function start(el) {
    const input = JSON.parse(el.querySelector("script.cnnbook-live-data").textContent);
    const images = {};
    for (const [name, d] of Object.entries(input.images)) images[name] = decode(d);
    const q = (sel) => el.querySelector(sel);
    const ctl = {};
    for (const n of ["image", "kind", "kernel", "stride", "dy", "dx"])
      ctl[n] = q(`[name="${n}"]`);
    const summary = q(".cnnbook-live-formula");
    const target = q("canvas.pooled-shifted");
    const sel = { i: 0, j: 0 };

    // where the gradient of pooled value (i, j) goes: [[row, col, weight], ...]
    function route(x, W, kind, K, s, i, j) {
      if (kind === "avg") {
        const out = [];
        for (let u = 0; u < K; u++)
          for (let v = 0; v < K; v++) out.push([s * i + u, s * j + v, 1 / (K * K)]);
        return out;
      }
      let best = [s * i, s * j];
      for (let u = 0; u < K; u++)
        for (let v = 0; v < K; v++)
          if (x[(s * i + u) * W + s * j + v] > x[best[0] * W + best[1]])
            best = [s * i + u, s * j + v];
      return [[best[0], best[1], 1]];
    }

    function update() {
      const img = images[ctl.image.value];
      const [H, W] = img.shape;
      const kind = ctl.kind.value;
      const [K, s, dy, dx] = ["kernel", "stride", "dy", "dx"].map((n) => Number(ctl[n].value));
      for (const n of ["kernel", "stride", "dy", "dx"])
        q(`output[name="${n}-value"]`).value = ctl[n].value;
      const x1 = shift(img.data, H, W, dy, dx);
      const a = pool(img.data, H, W, kind, K, s);
      const b = pool(x1, H, W, kind, K, s);
      let num = 0;
      let den = 0;
      let changed = 0;
      for (let n = 0; n < a.y.length; n++) {
        num += (b.y[n] - a.y[n]) ** 2;
        den += a.y[n] ** 2;
        if (b.y[n] !== a.y[n]) changed++;
      }
      const rel = num === 0 && den === 0 ? 0 : Math.sqrt(num / den);
      const [lo, hi] = range(img.data);
      draw(q("canvas.shifted"), x1, H, W, lo, hi);
      const [ylo, yhi] = range([...a.y, ...b.y]);
      draw(q("canvas.pooled"), a.y, a.OH, a.OW, ylo, yhi);
      draw(q("canvas.pooled-shifted"), b.y, b.OH, b.OW, ylo, yhi);
      q(".pooled-caption").textContent = `${kind} pool, ${a.OH}×${a.OW}`;
      q(".shifted-caption").textContent = `input shifted (${dy}, ${dx}), ${H}×${W}`;
      sel.i = Math.min(sel.i, b.OH - 1);
      sel.j = Math.min(sel.j, b.OW - 1);
      const grad = route(x1, W, kind, K, s, sel.i, sel.j);
      const ctxIn = q("canvas.shifted").getContext("2d");
      ctxIn.fillStyle = "rgba(255, 120, 0, 0.85)";
      for (const [r, c] of grad) ctxIn.fillRect(c, r, 1, 1);
      const ctxOut = target.getContext("2d");
      ctxOut.fillStyle = "rgba(255, 120, 0, 0.85)";
      ctxOut.fillRect(sel.j, sel.i, 1, 1);
      q(".pooled-shifted-caption").textContent =
        `pooled shifted input; gradient of (${sel.i}, ${sel.j}) in orange on the left`;
      const share = a.y.length ? changed / a.y.length : 0;
      summary.textContent =
        `OH = (${H} − ${K}) // ${s} + 1 = ${a.OH}, OW = (${W} − ${K}) // ${s} + 1 = ${a.OW}\n` +
        `shift by (${dy}, ${dx}): ‖y′ − y‖ / ‖y‖ = ${rel.toFixed(3)}; ` +
        `${(100 * share).toFixed(0)} % of the pooled values changed`;
      el.cnnbookLast = {
        image: ctl.image.value, kind, kernel: K, stride: s, dy, dx, OH: a.OH, OW: a.OW,
        y: Array.from(a.y), yShifted: Array.from(b.y), relative: rel, changed: share,
        selected: [sel.i, sel.j], route: grad,
      };
    }

    target.tabIndex = 0;
    target.addEventListener("click", (e) => {
      const r = target.getBoundingClientRect();
      sel.i = Math.floor(((e.clientY - r.top) / r.height) * target.height);
      sel.j = Math.floor(((e.clientX - r.left) / r.width) * target.width);
      update();
    });
    target.addEventListener("keydown", (e) => {
      const move = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1],
        ArrowRight: [0, 1] }[e.key];
      if (!move) return;
      e.preventDefault();
      sel.i = Math.max(0, Math.min(target.height - 1, sel.i + move[0]));
      sel.j = Math.max(0, Math.min(target.width - 1, sel.j + move[1]));
      update();
    });
    ctl.image.addEventListener("change", update);
    ctl.kind.addEventListener("change", update);
    for (const n of ["kernel", "stride", "dy", "dx"]) ctl[n].addEventListener("input", update);
    q(".cnnbook-live-fallback").hidden = true;
    q(".cnnbook-live-body").hidden = false;
    update();
  }

  function startAll() {
    document.querySelectorAll('[data-cnnbook-live="pool"]').forEach(start);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
