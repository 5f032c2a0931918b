/* The deep-network explorer of the activations chapter, in the published page
 * (issue 11). Its states are precomputed: for every <div data-cnnbook-live=
 * "actstack"> (cnnbook_book.activations.live_stack_explorer) the JSON holds, per
 * (activation, initialisation, weight scale), the per-layer std and mean of the
 * activations, the std of the gradients and quantiles of the sampled
 * activations, as cnnbook_book.activations.deep_stats computed them when the chapter
 * ran. The controls choose a state and a layer; the script draws the state and
 * prints the chosen layer's numbers. The last result is el.cnnbookLast for the
 * browser tests. Needs common.js. */
(function () {
  "use strict";
  const L = window.cnnbookLive;

  L.start("actstack", (el, cfg, q) => {
    const states = {};
    let lo = Infinity;
    let hi = -Infinity;
    for (const [key, s] of Object.entries(cfg.states)) {
      const st = {};
      for (const [k, v] of Object.entries(s)) st[k] = Array.from(L.decode(v).data);
      states[key] = st;
      for (const v of [...st.std, ...st.grad_std])
        if (v > 0) {
          lo = Math.min(lo, Math.log10(v));
          hi = Math.max(hi, Math.log10(v));
        }
    }
    const ylog = [Math.floor(lo), Math.ceil(hi)];
    const depth = cfg.depth;
    const nq = cfg.quantiles.length;
    const layers = Array.from({ length: depth }, (_, i) => i + 1);
    const ctl = {};
    for (const n of ["activation", "init", "scale", "layer"]) ctl[n] = q(`[name="${n}"]`);
    const out = q(".cnnbook-live-formula");

    function update() {
      const act = ctl.activation.value;
      const init = ctl.init.value;
      const scale = cfg.scales[Number(ctl.scale.value)];
      const layer = Number(ctl.layer.value);
      const s = states[`${act}|${init}|${scale}`];
      q('output[name="scale-value"]').value = String(scale);
      q('output[name="layer-value"]').value = String(layer);
      const quant = (k) => s.q.slice(k * depth, (k + 1) * depth);
      const { tx, ty } = L.plot(q("canvas.std"), {
        xlim: [1, depth],
        ylim: ylog,
        log: true,
        xlabel: "layer",
        series: [
          { x: layers, y: s.std, color: "#1a5f9e", width: 2, marker: true },
          { x: layers, y: s.grad_std, color: "#b35300", width: 2, dash: [6, 3] },
        ],
      });
      const mark = q("canvas.std").getContext("2d");
      mark.strokeStyle = "#000";
      mark.setLineDash([2, 2]);
      mark.beginPath();
      mark.moveTo(tx(layer), ty(10 ** ylog[0]));
      mark.lineTo(tx(layer), ty(10 ** ylog[1]));
      mark.stroke();
      mark.setLineDash([]);
      const all = s.q;
      let qlo = Math.min(...all);
      let qhi = Math.max(...all);
      const pad = 0.05 * (qhi - qlo || Math.abs(qhi) || 1);
      L.plot(q("canvas.quantiles"), {
        xlim: [1, depth],
        ylim: [qlo - pad, qhi + pad],
        xlabel: "layer",
        hline: 0,
        bands: [
          { x: layers, lo: quant(0), hi: quant(nq - 1), color: "rgba(26, 95, 158, 0.18)" },
          { x: layers, lo: quant(1), hi: quant(nq - 2), color: "rgba(26, 95, 158, 0.4)" },
        ],
        series: [{ x: layers, y: quant((nq - 1) / 2), color: "#1a5f9e", width: 2 }],
      });
      const i = layer - 1;
      const at = {
        std: s.std[i], mean: s.mean[i], gradStd: s.grad_std[i],
        quantiles: cfg.quantiles.map((_, k) => s.q[k * depth + i]),
      };
      const qs = cfg.quantiles.map((p, k) => `${Math.round(100 * p)} %: ${L.fmt(at.quantiles[k], 4)}`);
      out.textContent =
        `${act}, ${init} × ${scale}: std h_1 = ${L.fmt(s.std[0], 4)}, ` +
        `std h_${depth} = ${L.fmt(s.std[depth - 1], 4)}, grad h_1 = ${L.fmt(s.grad_std[0], 4)}\n` +
        `layer ${layer}: std = ${L.fmt(at.std, 4)}, mean = ${L.fmt(at.mean, 4)}, ` +
        `gradient std = ${L.fmt(at.gradStd, 4)}\n` +
        `quantiles ${qs.join(", ")}`;
      el.cnnbookLast = {
        activation: act, init, scale, layer, depth, std: s.std, gradStd: s.grad_std,
        mean: s.mean, at, text: out.textContent,
      };
    }

    ctl.activation.addEventListener("change", update);
    ctl.init.addEventListener("change", update);
    ctl.scale.addEventListener("input", update);
    ctl.layer.addEventListener("input", update);
    update();
  });
})();
