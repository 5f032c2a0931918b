/* What a CNN sees: attribution maps, live in the published page.
 *
 * Finds every <div data-cnnbook-live="sees"> (written by
 * cnnbook_book.sees.live_sees_explorer) and reads the LeNet-5's weights, the digits
 * and the SmoothGrad noise (float32 JSON). For the chosen digit, class c and method it
 * runs the network itself, in float64:
 *   conv 5x5 (pad 2) - ReLU - max-pool 2 - conv 5x5 - ReLU - max-pool 2 - 400 - 120 -
 *   ReLU - 84 - ReLU - 10, every convolution a cross-correlation as in
 *   cnnbook.functional.conv2d_forward, max-pool ties to the first in row-major order,
 *   ReLU' = [x > 0];
 * and its backward pass from dscores = one-hot(c), as model.backward does:
 *   saliency   |ds_c/dx|                                 (cnnbook_book.sees.saliency)
 *   smoothgrad mean of |ds_c/dx| at x + sigma (max x - min x) noise_k (.smoothgrad)
 *   gradcam    ReLU(sum_k alpha_k A_k), A the second ReLU's output, alpha_k the mean of
 *              ds_c/dA_k, upsampled from 10x10 (centres 4.5 + 2 i) (.grad_cam, .upsample)
 *   occlusion  mean drop of s_c when a patch x patch square (stride apart) is zeroed
 *                                                         (.occlusion)
 * The last result is el.cnnbookLast, for the browser tests. Uses common.js. */
(function () {
  "use strict";

  const decode = window.cnnbookLive.decode;  // common.js, loaded first

  // y (F, OH, OW) = b + sum_c,u,v w[f, c, u, v] x[c, i + u - p, j + v - p]
  function conv(x, C, H, W, w, b, F, K, p) {
    const OH = H + 2 * p - K + 1;
    const OW = W + 2 * p - K + 1;
    const y = new Float64Array(F * OH * OW);
    for (let f = 0; f < F; f++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          let acc = b[f];
          for (let c = 0; c < C; c++)
            for (let u = 0; u < K; u++) {
              const r = i + u - p;
              if (r < 0 || r >= H) continue;
              for (let v = 0; v < K; v++) {
                const q = j + v - p;
                if (q < 0 || q >= W) continue;
                acc += w[((f * C + c) * K + u) * K + v] * x[(c * H + r) * W + q];
              }
            }
          y[(f * OH + i) * OW + j] = acc;
        }
    return y;
  }

  // dx (C, H, W) of conv: sum_f,i,j dy[f, i, j] w[f, c, r - i + p, q - j + p]
  function convBack(dy, C, H, W, w, F, K, p) {
    const OH = H + 2 * p - K + 1;
    const OW = W + 2 * p - K + 1;
    const dx = new Float64Array(C * H * W);
    for (let f = 0; f < F; f++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          const g = dy[(f * OH + i) * OW + j];
          if (g === 0) continue;
          for (let c = 0; c < C; c++)
            for (let u = 0; u < K; u++) {
              const r = i + u - p;
              if (r < 0 || r >= H) continue;
              for (let v = 0; v < K; v++) {
                const q = j + v - p;
                if (q < 0 || q >= W) continue;
                dx[(c * H + r) * W + q] += g * w[((f * C + c) * K + u) * K + v];
              }
            }
        }
    return dx;
  }

  const relu = (a) => a.map((v) => (v > 0 ? v : 0));

  function pool(x, C, H, W) {
    const OH = H >> 1;
    const OW = W >> 1;
    const y = new Float64Array(C * OH * OW);
    const arg = new Int32Array(C * OH * OW);
    for (let c = 0; c < C; c++)
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          let best = (c * H + 2 * i) * W + 2 * j;
          for (let u = 0; u < 2; u++)
            for (let v = 0; v < 2; v++) {
              const n = (c * H + 2 * i + u) * W + 2 * j + v;
              if (x[n] > x[best]) best = n;
            }
          y[(c * OH + i) * OW + j] = x[best];
          arg[(c * OH + i) * OW + j] = best;
        }
    return { y, arg };
  }

  function dense(x, w, b, O, I) {
    const y = new Float64Array(O);
    for (let o = 0; o < O; o++) {
      let acc = b[o];
      for (let i = 0; i < I; i++) acc += w[o * I + i] * x[i];
      y[o] = acc;
    }
    return y;
  }

  function denseBack(dy, w, O, I) {
    const dx = new Float64Array(I);
    for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) dx[i] += dy[o] * w[o * I + i];
    return dx;
  }

  function makeNet(W) {
    const g = (k) => W[k].data;
    function forward(x) {
      const a1 = conv(x, 1, 28, 28, g("0.weight"), g("0.bias"), 6, 5, 2);
      const p1 = pool(relu(a1), 6, 28, 28);
      const a2 = conv(p1.y, 6, 14, 14, g("3.weight"), g("3.bias"), 16, 5, 0);
      const r2 = relu(a2);
      const p2 = pool(r2, 16, 10, 10);
      const h1 = dense(p2.y, g("7.weight"), g("7.bias"), 120, 400);
      const h2 = dense(relu(h1), g("9.weight"), g("9.bias"), 84, 120);
      const s = dense(relu(h2), g("11.weight"), g("11.bias"), 10, 84);
      return { a1, p1, a2, r2, p2, h1, h2, s };
    }
    function backward(f, c) {
      const ds = new Float64Array(10);
      ds[c] = 1;
      const dh2 = denseBack(ds, g("11.weight"), 10, 84).map((v, i) => (f.h2[i] > 0 ? v : 0));
      const dh1 = denseBack(dh2, g("9.weight"), 84, 120).map((v, i) => (f.h1[i] > 0 ? v : 0));
      const dp2 = denseBack(dh1, g("7.weight"), 120, 400);
      const dr2 = new Float64Array(1600);
      dp2.forEach((v, n) => (dr2[f.p2.arg[n]] += v));
      const da2 = dr2.map((v, n) => (f.a2[n] > 0 ? v : 0));
      const dp1 = convBack(da2, 6, 14, 14, g("3.weight"), 16, 5, 0);
      const dr1 = new Float64Array(6 * 784);
      dp1.forEach((v, n) => (dr1[f.p1.arg[n]] += v));
      const da1 = dr1.map((v, n) => (f.a1[n] > 0 ? v : 0));
      return { dx: convBack(da1, 1, 28, 28, g("0.weight"), 6, 5, 2), dr2 };
    }
    return { forward, backward };
  }

  // linear interpolation of m (h, w) at pixels 0..S-1, entry i at offset + stride i
  function upsample(m, h, w, S, offset, stride) {
    const at = (n, t) => {
      const u = Math.min(Math.max((t - offset) / stride, 0), n - 1);
      const i0 = Math.min(Math.floor(u), n - 2);
      return [i0, u - i0];
    };
    const rows = new Float64Array(S * w);
    for (let r = 0; r < S; r++) {
      const [i0, f] = at(h, r);
      for (let j = 0; j < w; j++) rows[r * w + j] = (1 - f) * m[i0 * w + j] + f * m[(i0 + 1) * w + j];
    }
    const out = new Float64Array(S * S);
    for (let r = 0; r < S; r++)
      for (let q = 0; q < S; q++) {
        const [j0, f] = at(w, q);
        out[r * S + q] = (1 - f) * rows[r * w + j0] + f * rows[r * w + j0 + 1];
      }
    return out;
  }

  function compute(net, x, c, method, noise, sigma, patch, stride) {
    if (method === "saliency") return net.backward(net.forward(x), c).dx.map(Math.abs);
    if (method === "smoothgrad") {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of x) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      const out = new Float64Array(784);
      const S = noise.shape[0];
      for (let k = 0; k < S; k++) {
        const xk = new Float64Array(784);
        for (let n = 0; n < 784; n++) xk[n] = x[n] + sigma * (hi - lo) * noise.data[k * 784 + n];
        const g = net.backward(net.forward(xk), c).dx;
        for (let n = 0; n < 784; n++) out[n] += Math.abs(g[n]) / S;
      }
      return out;
    }
    if (method === "gradcam") {
      const f = net.forward(x);
      const { dr2 } = net.backward(f, c);
      const cam = new Float64Array(100);
      for (let k = 0; k < 16; k++) {
        let alpha = 0;
        for (let n = 0; n < 100; n++) alpha += dr2[k * 100 + n] / 100;
        for (let n = 0; n < 100; n++) cam[n] += alpha * f.r2[k * 100 + n];
      }
      return upsample(relu(cam), 10, 10, 28, 4.5, 2);
    }
    // occlusion
    const base = net.forward(x).s[c];
    const out = new Float64Array(784);
    const cover = new Float64Array(784);
    for (let t = 0; t + patch <= 28; t += stride)
      for (let l = 0; l + patch <= 28; l += stride) {
        const xo = Float64Array.from(x);
        for (let r = t; r < t + patch; r++) for (let q = l; q < l + patch; q++) xo[r * 28 + q] = 0;
        const drop = base - net.forward(xo).s[c];
        for (let r = t; r < t + patch; r++)
          for (let q = l; q < l + patch; q++) {
            out[r * 28 + q] += drop;
            cover[r * 28 + q] += 1;
          }
      }
    return out.map((v, n) => v / Math.max(cover[n], 1));
  }

  function draw(canvas, digit, map) {
    canvas.width = 28;
    canvas.height = 28;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(28, 28);
    let hi = 0;
    if (map) for (const v of map) hi = Math.max(hi, Math.abs(v));
    for (let n = 0; n < 784; n++) {
      const d = digit ? digit[n] : 0;
      const m = map && hi > 0 ? Math.max(map[n], 0) / hi : 0;
      // digit in grey, the map in orange over it (map alone: black to orange)
      img.data[4 * n] = Math.round(255 * Math.min(1, 0.6 * d + m));
      img.data[4 * n + 1] = Math.round(255 * Math.min(1, 0.6 * d + 0.55 * m));
      img.data[4 * n + 2] = Math.round(255 * 0.6 * d);
      img.data[4 * n + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function start(el) {
    const input = JSON.parse(el.querySelector("script.cnnbook-live-data").textContent);
    const W = {};
    for (const [k, d] of Object.entries(input.weights)) W[k] = decode(d);
    const net = makeNet(W);
    const images = decode(input.images);
    const noise = decode(input.noise);
    const q = (sel) => el.querySelector(sel);
    const ctl = { digit: q('[name="digit"]'), cls: q('[name="cls"]'), method: q('[name="method"]') };
    const label = { saliency: "saliency |∂s_c/∂x|", smoothgrad: "SmoothGrad",
      gradcam: "Grad-CAM", occlusion: "occlusion" };

    function update() {
      const i = Number(ctl.digit.value);
      const x = Float64Array.from(images.data.subarray(i * 784, (i + 1) * 784));
      const s = Array.from(net.forward(x).s);
      const pred = s.indexOf(Math.max(...s));
      const c = ctl.cls.value === "pred" ? pred : Number(ctl.cls.value);
      const method = ctl.method.value;
      const map = compute(net, x, c, method, noise, input.sigma, input.patch, input.stride);
      draw(q("canvas.digit"), x, null);
      draw(q("canvas.map"), null, map);
      draw(q("canvas.overlay"), x, map);
      q(".digit-caption").textContent = `digit #${i}, a ${input.labels[i]}`;
      q(".map-caption").textContent = `${label[method]}, class ${c}`;
      q("canvas.digit").setAttribute("aria-label", `test digit #${i}, a ${input.labels[i]}`);
      q("canvas.map").setAttribute("aria-label", `${label[method]} map of class ${c}`);
      q("canvas.overlay").setAttribute("aria-label", `${label[method]} map over the digit`);
      let top = 0;
      map.forEach((v, n) => (top = v > map[top] ? n : top));
      q(".cnnbook-live-formula").textContent =
        `scores s: ${s.map((v) => v.toFixed(1)).join(" ")}\n` +
        `predicted ${pred}; map of class ${c}, largest at row ${Math.floor(top / 28)}, ` +
        `column ${top % 28}`;
      el.cnnbookLast = { digit: i, cls: c, pred, method, scores: s, map: Array.from(map) };
    }

    for (const n of Object.keys(ctl)) ctl[n].addEventListener("change", update);
    q(".cnnbook-live-fallback").hidden = true;
    q(".cnnbook-live-body").hidden = false;
    update();
  }

  function startAll() {
    document.querySelectorAll('[data-cnnbook-live="sees"]').forEach(start);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
