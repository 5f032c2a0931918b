/* The optimizer explorer, live in the published page (issue 11).
 *
 * Finds every <div data-cnnbook-live="optim"> (written by
 * cnnbook_book.backprop.live_optimizer_explorer) and, on every change of a control,
 * runs gradient descent, momentum and Adam from the start point on the chosen 2-D
 * surface, with the update rules of cnnbook.optim (SGD, SGD with momentum, Adam with
 * bias correction) and the early stop of cnnbook_book.backprop.trajectory, then draws
 * the paths over the surface's contours. The last result is exposed as
 * el.cnnbookLast = {surface, lr, momentum, steps, start, paths: {sgd, momentum,
 * adam}} for the browser tests. No dependencies. */
(function () {
  "use strict";

  // the surfaces of cnnbook_book.backprop.SURFACES: loss and gradient
  const SURFACES = {
    ravine: {
      f: (a, b) => 0.5 * (a * a + 10.0 * b * b),
      grad: (a, b) => [a, 10.0 * b],
    },
    rosenbrock: {
      f: (a, b) => (1 - a) ** 2 + 100 * (b - a * a) ** 2,
      grad: (a, b) => [-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)],
    },
  };
  const COLOURS = { sgd: "#1a5f9e", momentum: "#b35300", adam: "#1e7a1e" };

  // one optimizer's path: theta after 0, 1, ..., k steps (stops on blow-up)
  function path(surface, name, lr, beta, steps, start, cfg) {
    const [b1, b2] = cfg.betas;
    let th = start.slice();
    let buf = null;
    let m = [0, 0];
    let v = [0, 0];
    const out = [th.slice()];
    for (let t = 1; t <= steps; t++) {
      const g = surface.grad(th[0], th[1]);
      let next;
      if (name === "sgd") {
        next = [th[0] - lr * g[0], th[1] - lr * g[1]];
      } else if (name === "momentum") {
        buf = buf === null ? g.slice() : [beta * buf[0] + g[0], beta * buf[1] + g[1]];
        next = [th[0] - lr * buf[0], th[1] - lr * buf[1]];
      } else {
        m = [m[0] + (g[0] - m[0]) * (1 - b1), m[1] + (g[1] - m[1]) * (1 - b1)];
        v = [v[0] * b2 + (1 - b2) * g[0] * g[0], v[1] * b2 + (1 - b2) * g[1] * g[1]];
        const stepSize = lr / (1 - b1 ** t);
        const c2 = Math.sqrt(1 - b2 ** t);
        next = [0, 1].map((i) => th[i] - stepSize * (m[i] / (Math.sqrt(v[i]) / c2 + cfg.eps)));
      }
      th = next;
      if (!th.every(Number.isFinite) || Math.max(Math.abs(th[0]), Math.abs(th[1])) > cfg.blowup)
        break;
      out.push(th.slice());
    }
    return out;
  }

  function start(el) {
    const cfg = JSON.parse(el.querySelector("script.cnnbook-live-data").textContent);
    const q = (sel) => el.querySelector(sel);
    const ctl = {};
    for (const n of ["surface", "lr", "momentum", "steps", "start1", "start2"])
      ctl[n] = q(`[name="${n}"]`);
    const canvas = q("canvas.surface");
    const summary = q(".cnnbook-live-formula");
    const ctx = canvas.getContext("2d");
    const Wc = canvas.width;
    const Hc = canvas.height;
    let background = null;
    let drawnFor = null;

    const spec = () => cfg.surfaces[ctl.surface.value];
    const toPx = (s, a, b) => [
      ((a - s.xlim[0]) / (s.xlim[1] - s.xlim[0])) * Wc,
      ((s.ylim[1] - b) / (s.ylim[1] - s.ylim[0])) * Hc,
    ];

    // contour lines: pixels where the level band changes
    function contours(s) {
      const f = SURFACES[s.name].f;
      const band = new Int16Array(Wc * Hc);
      for (let y = 0; y < Hc; y++)
        for (let x = 0; x < Wc; x++) {
          const a = s.xlim[0] + ((x + 0.5) / Wc) * (s.xlim[1] - s.xlim[0]);
          const b = s.ylim[1] - ((y + 0.5) / Hc) * (s.ylim[1] - s.ylim[0]);
          const L = f(a, b);
          let k = 0;
          while (k < s.levels.length && L > s.levels[k]) k++;
          band[y * Wc + x] = k;
        }
      const img = ctx.createImageData(Wc, Hc);
      for (let n = 0; n < Wc * Hc; n++) {
        const x = n % Wc;
        const edge = (x + 1 < Wc && band[n + 1] !== band[n]) ||
          (n + Wc < Wc * Hc && band[n + Wc] !== band[n]);
        const g = edge ? 150 : 255 - 3 * band[n];
        img.data[4 * n] = img.data[4 * n + 1] = img.data[4 * n + 2] = g;
        img.data[4 * n + 3] = 255;
      }
      return img;
    }

    function setStartRanges(s, reset) {
      const r = [[ctl.start1, s.xlim, s.start[0]], [ctl.start2, s.ylim, s.start[1]]];
      for (const [input, lim, value] of r) {
        input.min = lim[0];
        input.max = lim[1];
        if (reset) input.value = value;
      }
    }

    function update() {
      const s = spec();
      const lr = 10 ** Number(ctl.lr.value);
      const beta = Number(ctl.momentum.value);
      const steps = Number(ctl.steps.value);
      const st = [Number(ctl.start1.value), Number(ctl.start2.value)];
      const show = { lr: lr.toPrecision(3), momentum: beta.toFixed(2), steps,
        start1: st[0].toFixed(1), start2: st[1].toFixed(1) };
      for (const [n, v] of Object.entries(show)) q(`output[name="${n}-value"]`).value = v;
      if (drawnFor !== s.name) {
        background = contours(s);
        drawnFor = s.name;
      }
      ctx.putImageData(background, 0, 0);
      const paths = {};
      const lines = [];
      for (const name of ["sgd", "momentum", "adam"]) {
        const p = path(SURFACES[s.name], name, lr, beta, steps, st, cfg);
        paths[name] = p;
        ctx.strokeStyle = ctx.fillStyle = COLOURS[name];
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        p.forEach(([a, b], i) => {
          const [x, y] = toPx(s, Math.max(-1e4, Math.min(1e4, a)), Math.max(-1e4, Math.min(1e4, b)));
          if (i) ctx.lineTo(x, y);
          else ctx.moveTo(x, y);
        });
        ctx.stroke();
        const last = p[p.length - 1];
        const L = SURFACES[s.name].f(last[0], last[1]);
        const fate = p.length < steps + 1 ? `diverged at step ${p.length}`
          : `θ = (${last[0].toFixed(3)}, ${last[1].toFixed(3)}), L = ${L.toPrecision(3)}`;
        const label = name === "momentum" ? `momentum ${beta.toFixed(2)}` : name;
        lines.push(`${label}: ${fate}`);
      }
      const [mx, my] = toPx(s, s.minimum[0], s.minimum[1]);
      ctx.fillStyle = "#000";
      ctx.fillRect(mx - 3, my - 3, 6, 6);
      const [sx, sy] = toPx(s, st[0], st[1]);
      ctx.strokeStyle = "#000";
      ctx.strokeRect(sx - 4, sy - 4, 8, 8);
      summary.textContent = `lr = ${lr.toPrecision(3)}, ${steps} steps\n${lines.join("\n")}`;
      el.cnnbookLast = { surface: s.name, lr, momentum: beta, steps, start: st, paths };
    }

    ctl.surface.addEventListener("change", () => {
      setStartRanges(spec(), true);
      update();
    });
    for (const n of ["lr", "momentum", "steps", "start1", "start2"])
      ctl[n].addEventListener("input", update);
    canvas.addEventListener("click", (e) => {
      const s = spec();
      const r = canvas.getBoundingClientRect();
      const a = s.xlim[0] + ((e.clientX - r.left) / r.width) * (s.xlim[1] - s.xlim[0]);
      const b = s.ylim[1] - ((e.clientY - r.top) / r.height) * (s.ylim[1] - s.ylim[0]);
      ctl.start1.value = a.toFixed(1);
      ctl.start2.value = b.toFixed(1);
      update();
    });
    setStartRanges(spec(), false);
    q(".cnnbook-live-fallback").hidden = true;
    q(".cnnbook-live-body").hidden = false;
    update();
  }

  function startAll() {
    document.querySelectorAll('[data-cnnbook-live="optim"]').forEach(start);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
