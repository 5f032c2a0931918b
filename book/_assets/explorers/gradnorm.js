/* The gradient-norm explorer of the deep architectures chapter, in the published
 * page (issue 11). Its numbers are precomputed: every <div data-cnnbook-live=
 * "gradnorm"> (cnnbook_book.deep.live_gradient_explorer) holds the grid of
 * cnnbook_book.deep.gradient_grid (weight-gradient norm of every convolution, per
 * activation, batch norm, skip connections and depth) as the chapter computed it.
 * The controls choose a setting; the script plots its norms per layer on a log
 * scale shared by all settings, with the twin setting (skip switched) in grey, and
 * prints the ratio layer 1 / layer L and the extremes. The last result is
 * el.cnnbookLast for the browser tests. Needs common.js. */
(function () {
  "use strict";
  const L = window.cnnbookLive;

  L.start("gradnorm", (el, cfg, q) => {
    const norms = {};
    let lo = Infinity;
    let hi = -Infinity;
    for (const [key, d] of Object.entries(cfg.norms)) {
      norms[key] = Array.from(L.decode(d).data);
      for (const v of norms[key]) {
        lo = Math.min(lo, Math.log10(v));
        hi = Math.max(hi, Math.log10(v));
      }
    }
    const ylim = [Math.floor(lo), Math.ceil(hi)];
    const maxDepth = Math.max(...cfg.depths);
    const ctl = {};
    for (const n of ["depth", "skip", "batch_norm", "activation"]) ctl[n] = q(`[name="${n}"]`);
    const out = q(".cnnbook-live-formula");

    function update() {
      const depth = Number(ctl.depth.value);
      const skip = ctl.skip.checked;
      const bn = ctl.batch_norm.checked;
      const act = ctl.activation.value;
      const key = (s) => `${act}|${Number(bn)}|${Number(s)}|${depth}`;
      const n = norms[key(skip)];
      const twin = norms[key(!skip)];
      const layers = n.map((_, i) => i + 1);
      L.plot(q("canvas.norms"), {
        xlim: [1, maxDepth],
        ylim,
        log: true,
        xlabel: "layer",
        series: [
          { x: layers, y: twin, color: "#999", width: 1.5, dash: [5, 3] },
          { x: layers, y: n, color: "#1a5f9e", width: 2, marker: true },
        ],
      });
      let top = 0;
      let bottom = 0;
      n.forEach((v, i) => {
        if (v > n[top]) top = i;
        if (v < n[bottom]) bottom = i;
      });
      const ratio = n[0] / n[depth - 1];
      const setting = `${act}${bn ? " + batch norm" : ""}, ` +
        `${skip ? "skip connections" : "plain"}, ${depth} layers`;
      out.textContent =
        `${setting}: layer 1 / layer ${depth} = ${ratio.toExponential(2)}\n` +
        `largest ${n[top].toExponential(2)} (layer ${top + 1}), ` +
        `smallest ${n[bottom].toExponential(2)} (layer ${bottom + 1})`;
      el.cnnbookLast = {
        activation: act, batchNorm: bn, skip, depth, norms: n, twin, ratio,
        largest: n[top], smallest: n[bottom], text: out.textContent,
      };
    }

    for (const c of Object.values(ctl)) c.addEventListener("change", update);
    update();
  });
})();
