/* The convolution step-through, live in the published page (issue 11).
 *
 * Finds every <div data-cnnbook-live="convstep"> (written by
 * cnnbook_book.convolution.live_step_explorer): a small input x (H, W), a kernel
 * k (KH, KW), stride s and padding p. For the output position (i, j) chosen with the
 * sliders (or by clicking an output cell) it outlines the window of the padded input,
 * writes out the products k[u, v] * xpad[s*i + u, s*j + v] and their sum y[i, j], and
 * fills the output grid up to (i, j) in raster order. The last result is exposed as
 * el.cnnbookLast = {i, j, window, products, sum, y} for the browser tests. */
(function () {
  "use strict";

  const decode = window.cnnbookLive.decode;  // common.js, loaded first

  const fmt = (v) => String(Number(v.toPrecision(4)));

  function table(rows, cols, cell) {
    const t = document.createElement("table");
    t.className = "cnnbook-live-grid";
    for (let r = 0; r < rows; r++) {
      const tr = t.insertRow();
      for (let c = 0; c < cols; c++) cell(tr.insertCell(), r, c);
    }
    return t;
  }

  function start(el) {
    const cfg = JSON.parse(el.querySelector("script.cnnbook-live-data").textContent);
    const x = decode(cfg.x);
    const k = decode(cfg.k);
    const [H, W] = x.shape;
    const [KH, KW] = k.shape;
    const s = cfg.stride;
    const p = cfg.padding;
    const HP = H + 2 * p;
    const WP = W + 2 * p;
    const xpad = new Float64Array(HP * WP);
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) xpad[(r + p) * WP + c + p] = x.data[r * W + c];
    const OH = Math.floor((HP - KH) / s) + 1;
    const OW = Math.floor((WP - KW) / s) + 1;
    const y = new Float64Array(OH * OW);
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++) {
        let acc = 0;
        for (let u = 0; u < KH; u++)
          for (let v = 0; v < KW; v++)
            acc += k.data[u * KW + v] * xpad[(s * i + u) * WP + s * j + v];
        y[i * OW + j] = acc;
      }
    const q = (sel) => el.querySelector(sel);
    const ri = q('input[name="i"]');
    const rj = q('input[name="j"]');
    const grids = q(".cnnbook-live-grids");
    const inputTable = table(HP, WP, (td, r, c) => {
      td.textContent = fmt(xpad[r * WP + c]);
      const inside = r >= p && r < p + H && c >= p && c < p + W;
      if (!inside) td.className = "pad";
    });
    const kernelTable = table(KH, KW, (td, u, v) => (td.textContent = fmt(k.data[u * KW + v])));
    const outputTable = table(OH, OW, (td, i, j) => {
      td.tabIndex = -1;
      td.addEventListener("click", () => {
        ri.value = i;
        rj.value = j;
        update();
      });
    });
    const captions = [
      [inputTable, `input ${H}×${W}, padded by ${p}`],
      [kernelTable, `kernel ${KH}×${KW}`],
      [outputTable, `output ${OH}×${OW}, stride ${s}`],
    ];
    for (const [t, text] of captions) {
      const fig = document.createElement("figure");
      t.createCaption().textContent = text;
      fig.append(t);
      grids.append(fig);
    }
    const sumEl = q(".cnnbook-live-formula");

    function update() {
      const i = Number(ri.value);
      const j = Number(rj.value);
      q('output[name="i-value"]').value = i;
      q('output[name="j-value"]').value = j;
      for (let r = 0; r < HP; r++)
        for (let c = 0; c < WP; c++) {
          const inWin = r >= s * i && r < s * i + KH && c >= s * j && c < s * j + KW;
          inputTable.rows[r].cells[c].classList.toggle("window", inWin);
        }
      for (let a = 0; a < OH; a++)
        for (let b = 0; b < OW; b++) {
          const td = outputTable.rows[a].cells[b];
          td.textContent = a * OW + b <= i * OW + j ? fmt(y[a * OW + b]) : "";
          td.classList.toggle("window", a === i && b === j);
        }
      const window = [];
      const products = [];
      const terms = [];
      let sum = 0;
      for (let u = 0; u < KH; u++)
        for (let v = 0; v < KW; v++) {
          const xv = xpad[(s * i + u) * WP + s * j + v];
          const kv = k.data[u * KW + v];
          window.push(xv);
          products.push(kv * xv);
          terms.push(`${fmt(kv)}·${fmt(xv)}`);
          sum += kv * xv;
        }
      sumEl.textContent = `y[${i}, ${j}] = ${terms.join(" + ")} = ${fmt(sum)}`;
      el.cnnbookLast = { i, j, OH, OW, window, products, sum, y: Array.from(y) };
    }

    ri.max = OH - 1;
    rj.max = OW - 1;
    ri.addEventListener("input", update);
    rj.addEventListener("input", update);
    q(".cnnbook-live-fallback").hidden = true;
    q(".cnnbook-live-body").hidden = false;
    update();
  }

  function startAll() {
    document.querySelectorAll('[data-cnnbook-live="convstep"]').forEach(start);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
