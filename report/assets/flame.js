// Icicle flamegraph of the merged call tree: the outermost frame on top,
// callees beneath, width by the chosen metric. Click zooms (and filters the
// site table to the subtree), search highlights frames and says how much
// they cover. The tree arrives in pre-order, so a subtree is an index range.
"use strict";

MS.flame = (box, p, caption, onPick) => {
  const F = p.flame, N = F.f.length, frames = p.frames, ROW = 18;
  // Allocation wrappers (frames before a site's caller): drawn dimmed.
  const wrappers = new Set(p.wrappers || []);
  const kids = Array.from({ length: N }, () => []);
  for (let i = 1; i < N; i++) kids[F.p[i]].push(i);
  const end = new Int32Array(N), depth = new Int32Array(N);
  for (let i = 1; i < N; i++) depth[i] = depth[F.p[i]] + 1;
  for (let i = N - 1; i >= 0; i--) end[i] = kids[i].length ? end[kids[i][kids[i].length - 1]] : i + 1;
  let metric = "b", focus = 0, query = "", path = new Set(), rects = [];

  const label = (i) => (F.f[i] === -1 ? "all" : F.f[i] === -2 ? "[no stack: backtraces off]" : frames[F.f[i]][0]);
  const where = (i) => {
    const fr = F.f[i] >= 0 ? frames[F.f[i]] : null;
    if (!fr) return "";
    const loc = fr[1] ? fr[1] + (fr[2] ? ":" + fr[2] : "") : "";
    return [loc, fr[3] ? fr[3].split("/").pop() : "", fr[4] ? "inlined" : ""].filter(Boolean).join("  ·  ");
  };
  const matches = (i) => {
    if (!query) return false;
    const fr = F.f[i] >= 0 ? frames[F.f[i]] : [label(i)];
    return fr.slice(0, 4).some((s) => typeof s === "string" && s.toLowerCase().includes(query));
  };
  const color = (i) => {
    const f = F.f[i];
    if (f < 0) return "#cfd6e2";
    const name = frames[f][0];
    if (wrappers.has(f)) return "#e4e7ee";
    if (/^0x[0-9a-f]+$/i.test(name)) return "#c3c8d1";
    let h = 0;
    for (let k = 0; k < name.length; k++) h = (h * 31 + name.charCodeAt(k)) | 0;
    h = Math.abs(h);
    return `hsl(${8 + (h % 42)}, ${72 + ((h >> 6) % 18)}%, ${58 + ((h >> 11) % 14)}%)`;
  };

  // Visible rectangles: ancestors of the focus span the width, the focus's
  // subtree is scaled to it; boxes under half a pixel are skipped.
  const layout = (W) => {
    const v = F[metric], out = [];
    const chain = [];
    for (let i = focus; i !== -1; i = F.p[i]) chain.unshift(i);
    chain.forEach((i, d) => out.push([i, 0, d * ROW, W, d < chain.length - 1]));
    const scale = v[focus] > 0 ? W / v[focus] : 0, base = chain.length - 1;
    const todo = [[focus, 0]];
    while (todo.length) {
      const [i, x] = todo.pop();
      let cx = x;
      const ks = kids[i].slice().sort((a, b) => v[b] - v[a]);
      for (const k of ks) {
        const w = v[k] * scale;
        if (w < 0.5) break;
        out.push([k, cx, (depth[k] - depth[focus] + base) * ROW, w, false]);
        todo.push([k, cx]);
        cx += w;
      }
    }
    return out;
  };

  const draw = () => {
    const W = Math.max(200, box.clientWidth);
    rects = layout(W);
    const rows = rects.reduce((m, r) => Math.max(m, r[2] / ROW + 1), 1);
    const { ctx } = MS.canvas(box, rows * ROW + 2);
    ctx.font = "11px " + getComputedStyle(document.body).getPropertyValue("--mono");
    const cw = ctx.measureText("m").width || 6.6;
    ctx.textBaseline = "middle";
    for (const [i, x, y, w, above] of rects) {
      const hit = matches(i);
      ctx.fillStyle = hit ? "#b35ce8" : query ? "#e6e8ee" : color(i);
      ctx.globalAlpha = above ? 0.55 : 1;
      ctx.fillRect(x + 0.5, y + 0.5, Math.max(0.5, w - 1), ROW - 1);
      ctx.globalAlpha = 1;
      if (path.has(i)) {
        ctx.strokeStyle = "#1d2330";
        ctx.lineWidth = 2;
        ctx.strokeRect(x + 1.5, y + 1.5, Math.max(1, w - 3), ROW - 3);
      }
      const fit = Math.floor((w - 8) / cw);
      if (fit >= 3) {
        const t = label(i);
        ctx.fillStyle = hit ? "#fff" : "#1d2330";
        ctx.fillText(t.length > fit ? t.slice(0, fit - 1) + "…" : t, x + 4, y + ROW / 2 + 0.5);
      }
    }
    if (F[metric][0] === 0) {
      ctx.fillStyle = "#687086";
      ctx.fillText("Nothing to show for this metric (all zero).", 10, ROW * 1.5);
    }
    describe();
    box.dataset.drawn = String(rects.length);
  };

  const describe = () => {
    const v = F[metric], unit = metric === "n" ? MS.count : MS.bytes;
    let text = `${MS.count(N - 1)} frame${N === 2 ? "" : "s"} in the tree` + (F.pruned ? `, ${MS.count(F.pruned)} too small to draw left out` : "");
    if (focus !== 0) text = `zoomed to ${label(focus)}: ${unit(v[focus])} (${MS.pct(v[focus], v[0])})  ·  ` + text;
    if (query) {
      let covered = 0, hits = 0;
      for (let i = 0, until = 0; i < N; i++) {
        if (!matches(i)) continue;
        hits++;
        if (i >= until) { covered += v[i]; until = end[i]; }
      }
      text = `${MS.count(hits)} frame${hits === 1 ? " matches" : "s match"}, ${MS.pct(covered, v[0])} of the total  ·  ` + text;
    }
    caption.textContent = text;
  };

  const at = (ev) => {
    const r = box.querySelector("canvas").getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    return rects.find(([, rx, ry, w]) => x >= rx && x < rx + w && y >= ry && y < ry + ROW);
  };
  box.onmousemove = (ev) => {
    const hit = at(ev);
    if (!hit) { MS.tip(); return; }
    const i = hit[0], selfOf = (m) => F[m][i] - kids[i].reduce((s, k) => s + F[m][k], 0);
    MS.tip(ev, [
      [label(i), "t"],
      [where(i), "m"],
      [`${MS.bytes(F.b[i])} allocated (${MS.pct(F.b[i], F.b[0])}), ${MS.bytes(selfOf("b"))} here`, ""],
      [`${MS.count(F.n[i])} allocations (${MS.pct(F.n[i], F.n[0])})`, ""],
      [`${MS.bytes(F.l[i])} live at exit (${MS.pct(F.l[i], F.l[0])})`, ""],
      ["click to zoom", "m"],
    ].filter(([t]) => t));
  };
  box.onmouseleave = () => MS.tip();
  box.onclick = (ev) => {
    const hit = at(ev);
    if (!hit) return;
    focus = hit[0];
    onPick(focus === 0 ? null : [focus, end[focus], label(focus)]);
    draw();
  };
  draw();
  return {
    redraw: draw,
    metric: (m) => { metric = m; draw(); },
    search: (q) => { query = q.trim().toLowerCase(); draw(); },
    reset: () => { focus = 0; onPick(null); draw(); },
    // Outlines the path from the root to a site's leaf node.
    mark: (node) => {
      path = new Set();
      for (let i = node; i >= 0; i = F.p[i]) path.add(i);
      draw();
    },
  };
};
