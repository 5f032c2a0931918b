/* The kernel explorer, live in the published page (issue 11).
 *
 * Finds every <div data-cnnbook-live="conv"> (written by
 * cnnbook_book.convolution.live_kernel_explorer), reads its JSON inputs (image and
 * preset kernels, float32) and recomputes on every change of a control:
 *   y[i, j] = sum_u sum_v k[u, v] * xpad[s*i + d*u, s*j + d*v]
 * (cross-correlation, zero padding p, stride s, dilation d), as
 * cnnbook.functional.conv2d_forward does. The last result is exposed on the element
 * as el.cnnbookLast = {OH, OW, y: Float64Array, kernel, stride, padding, dilation}
 * for the browser tests. No dependencies. */
(function () {
  "use strict";

  const { decode, grey: draw } = window.cnnbookLive;  // common.js, loaded first

  // cnnbook_book.convolution.parse_kernel: rows by ";" or newlines, numbers by
  // spaces or commas, fractions such as 1/9
  function parseKernel(text) {
    const rows = text.split(/[;\n]/).filter((r) => r.trim());
    if (!rows.length) throw new Error("the kernel is empty");
    const values = rows.map((r) =>
      r.trim().split(/[,\s]+/).map((t) => {
        const [num, den] = t.split("/");
        const v = den === undefined ? Number(num) : Number(num) / Number(den);
        if (!Number.isFinite(v) || num === "") throw new Error(`'${t}' is not a number`);
        return v;
      })
    );
    const lengths = values.map((r) => r.length);
    if (new Set(lengths).size !== 1)
      throw new Error(`every row needs the same number of entries, got [${lengths}]`);
    return { shape: [values.length, lengths[0]], data: Float64Array.from(values.flat()) };
  }

  function outSize(H, K, s, p, d) {
    return Math.floor((H + 2 * p - d * (K - 1) - 1) / s) + 1;
  }

  function formula(H, K, s, p, d) {
    return `(${H} + 2·${p} − ${d}·(${K}−1) − 1) // ${s} + 1 = ${outSize(H, K, s, p, d)}`;
  }

  function correlate(x, H, W, k, KH, KW, s, p, d) {
    const OH = outSize(H, KH, s, p, d);
    const OW = outSize(W, KW, s, p, d);
    const y = new Float64Array(OH * OW);
    for (let i = 0; i < OH; i++)
      for (let j = 0; j < OW; j++) {
        let acc = 0;
        for (let u = 0; u < KH; u++) {
          const r = s * i + d * u - p;
          if (r < 0 || r >= H) continue;
          for (let v = 0; v < KW; v++) {
            const c = s * j + d * v - p;
            if (c >= 0 && c < W) acc += k[u * KW + v] * x[r * W + c];
          }
        }
        y[i * OW + j] = acc;
      }
    return { OH, OW, y };
  }

  function start(el) {
    const input = JSON.parse(el.querySelector("script.cnnbook-live-data").textContent);
    const image = decode(input.image);
    const [H, W] = image.shape;
    const presets = {};
    for (const [name, k] of Object.entries(input.presets)) presets[name] = decode(k);
    const q = (sel) => el.querySelector(sel);
    const preset = q('select[name="preset"]');
    const text = q('textarea[name="kernel"]');
    const ranges = ["stride", "padding", "dilation"].map((n) => q(`input[name="${n}"]`));
    const formulaEl = q(".cnnbook-live-formula");
    const out = q("canvas.output");
    const caption = q(".output-caption");
    draw(q("canvas.input"), image.data, H, W);

    function update() {
      const [s, p, d] = ranges.map((r) => Number(r.value));
      ranges.forEach((r) => (el.querySelector(`output[name="${r.name}-value"]`).value = r.value));
      let k;
      try {
        k = preset.value === "custom" ? parseKernel(text.value) : presets[preset.value];
      } catch (err) {
        formulaEl.textContent = `kernel: ${err.message}`;
        el.cnnbookLast = { error: err.message };
        return;
      }
      const [KH, KW] = k.shape;
      const OH = outSize(H, KH, s, p, d);
      const OW = outSize(W, KW, s, p, d);
      const lines = [`OH = ${formula(H, KH, s, p, d)}`, `OW = ${formula(W, KW, s, p, d)}`];
      formulaEl.textContent = lines.join("\n");
      if (OH < 1 || OW < 1) {
        formulaEl.textContent += "\nno output: the dilated kernel is larger than the padded image";
        el.cnnbookLast = { error: "empty", OH, OW };
        return;
      }
      const r = correlate(image.data, H, W, k.data, KH, KW, s, p, d);
      draw(out, r.y, r.OH, r.OW);
      caption.textContent = `output ${r.OH}×${r.OW}`;
      el.cnnbookLast = {
        OH: r.OH, OW: r.OW, y: Array.from(r.y), kernel: Array.from(k.data),
        KH, KW, stride: s, padding: p, dilation: d, preset: preset.value,
        formula: formulaEl.textContent,
      };
    }

    preset.addEventListener("change", () => {
      if (preset.value !== "custom") {
        const k = presets[preset.value];
        const [KH, KW] = k.shape;
        const rows = [];
        for (let u = 0; u < KH; u++)
          rows.push(Array.from(k.data.slice(u * KW, (u + 1) * KW), (v) =>
            Number(v.toPrecision(4))).join(" "));
        text.value = rows.join("\n");
      }
      update();
    });
    text.addEventListener("input", () => {
      preset.value = "custom";
      update();
    });
    ranges.forEach((r) => r.addEventListener("input", update));
    el.querySelector(".cnnbook-live-fallback").hidden = true;
    el.querySelector(".cnnbook-live-body").hidden = false;
    update();
  }

  function startAll() {
    document.querySelectorAll('[data-cnnbook-live="conv"]').forEach(start);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
