// Canvas charts: live heap over time, allocation rate, lifetime histogram.
// Each marks its container with data-drawn once it has painted.
"use strict";

const PAD = { l: 78, r: 36, t: 14, b: 24 };
const area = (w, h) => ({ x: PAD.l, y: PAD.t, w: w - PAD.l - PAD.r, h: h - PAD.t - PAD.b });

// Index of the last timeline point at or before t (the step in force).
const stepAt = (ts, t) => {
  let lo = 0, hi = ts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ts[mid] <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
};

MS.timeline = (box, p) => {
  const tl = p.timeline, span = Math.max(p.end_t, tl.t[tl.t.length - 1] || 0, 1);
  // Resident bytes (whole process, sampled; null where not) beside the heap.
  const rs = tl.r || [], rssPeak = p.summary.peak_rss_bytes || 0;
  const peak = p.summary.peak_live_bytes;
  const max = Math.max(peak, ...tl.b, ...rs.filter((v) => v !== null), rssPeak, 1) * 1.12;
  const h3 = box.parentElement && box.parentElement.querySelector("h3");
  if (h3 && (rs.length || rssPeak) && !h3.dataset.resident) {
    h3.dataset.resident = "1";
    const key = document.createElement("span");
    key.className = "hint";
    key.textContent = ` · blue: live heap · orange: resident memory of the whole process` +
      (rssPeak ? `, peak ${MS.bytes(rssPeak)}` : "");
    h3.appendChild(key);
    if (p.summary.outside_malloc) {
      const note = document.createElement("p");
      note.className = "alert";
      note.textContent = "Note: " + p.summary.outside_malloc + ".";
      h3.after(note);
    }
  }
  const draw = (hoverT) => {
    const { ctx, w, h } = MS.canvas(box);
    const a = area(w, h);
    const X = (t) => a.x + (t / span) * a.w, Y = (b) => a.y + a.h - (b / max) * a.h;
    MS.yAxis(ctx, a, max / 1.12, MS.bytes, 1024);
    MS.xTime(ctx, a, span);
    // Live bytes are a step function: each point holds until the next.
    const steps = new Path2D();
    steps.moveTo(X(0), Y(0));
    for (let i = 0; i < tl.t.length; i++) {
      if (i > 0) steps.lineTo(X(tl.t[i]), Y(tl.b[i - 1]));
      steps.lineTo(X(tl.t[i]), Y(tl.b[i]));
    }
    steps.lineTo(X(span), Y(tl.b[tl.b.length - 1] || 0));
    const fill = new Path2D(steps);
    fill.lineTo(X(span), Y(0));
    fill.closePath();
    const g = ctx.createLinearGradient(0, a.y, 0, a.y + a.h);
    g.addColorStop(0, "rgba(47,111,221,.35)");
    g.addColorStop(1, "rgba(47,111,221,.05)");
    ctx.fillStyle = g;
    ctx.fill(fill);
    ctx.strokeStyle = "#2f6fdd";
    ctx.lineWidth = 1.5;
    ctx.stroke(steps);
    // Resident bytes: a line through the sampled points.
    if (rs.some((v) => v !== null)) {
      const line = new Path2D();
      let started = false;
      for (let i = 0; i < tl.t.length; i++) {
        if (rs[i] === null || rs[i] === undefined) continue;
        if (started) line.lineTo(X(tl.t[i]), Y(rs[i])); else line.moveTo(X(tl.t[i]), Y(rs[i]));
        started = true;
      }
      ctx.strokeStyle = "#e8590c";
      ctx.lineWidth = 1.5;
      ctx.stroke(line);
    }
    // The peak: a dot, a dashed guide and its value.
    const px = X(p.summary.peak_t), py = Y(peak);
    ctx.setLineDash([3, 3]);
    ctx.strokeStyle = "#d6336c";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(px, py);
    ctx.lineTo(px, a.y + a.h);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#d6336c";
    ctx.beginPath();
    ctx.arc(px, py, 4, 0, 2 * Math.PI);
    ctx.fill();
    ctx.font = "600 11.5px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    const label = `peak ${MS.bytes(peak)} at +${MS.dur(p.summary.peak_t)}`;
    ctx.textAlign = px > a.x + a.w * 0.7 ? "right" : "left";
    ctx.fillText(label, px + (ctx.textAlign === "left" ? 7 : -7), py - 3);
    if (hoverT !== undefined) {
      const i = stepAt(tl.t, hoverT);
      ctx.strokeStyle = "rgba(29,35,48,.45)";
      ctx.beginPath();
      ctx.moveTo(X(hoverT), a.y);
      ctx.lineTo(X(hoverT), a.y + a.h);
      ctx.stroke();
      ctx.fillStyle = "#1d2330";
      ctx.beginPath();
      ctx.arc(X(hoverT), Y(tl.b[i]), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
    box.dataset.drawn = String(tl.t.length);
    return a;
  };
  let a = draw();
  box.onmousemove = (ev) => {
    const r = box.getBoundingClientRect(), x = ev.clientX - r.left;
    if (x < a.x || x > a.x + a.w) { MS.tip(); a = draw(); return; }
    const t = ((x - a.x) / a.w) * span, i = stepAt(tl.t, t);
    a = draw(t);
    const res = rs[i] !== null && rs[i] !== undefined ? [[MS.bytes(rs[i]) + " resident", "m"]] : [];
    MS.tip(ev, [[MS.bytes(tl.b[i]) + " live", "t"], [`+${MS.dur(t)}  ·  ${MS.count(tl.b[i])} bytes`, "m"], ...res]);
  };
  box.onmouseleave = () => { MS.tip(); a = draw(); };
  return () => { a = draw(); };
};

MS.rate = (box, p, caption) => {
  const r = p.rate, n = r.allocs.length, perSec = 1e9 / r.width;
  caption.textContent = `allocations per second, ${MS.dur(r.width)} buckets` +
    (r.omitted > 0 ? ` · from the ${MS.count(r.records)} listed of ${MS.count(r.records + r.omitted)} blocks` : "");
  const max = Math.max(1, ...r.allocs, ...r.frees) * perSec * 1.1;
  let a;
  const draw = (hover) => {
    const { ctx, w, h } = MS.canvas(box);
    a = area(w, h);
    MS.yAxis(ctx, a, max / 1.1, (v) => MS.count(Math.round(v)) + "/s");
    const bw = a.w / n;
    for (let i = 0; i < n; i++) {
      const bh = (r.allocs[i] * perSec / max) * a.h;
      ctx.fillStyle = i === hover ? "#e8590c" : "#4c9a8b";
      ctx.fillRect(a.x + i * bw + 0.5, a.y + a.h - bh, Math.max(1, bw - 1), bh);
    }
    ctx.beginPath();
    for (let i = 0; i < n; i++) {
      const y = a.y + a.h - (r.frees[i] * perSec / max) * a.h;
      if (i === 0) ctx.moveTo(a.x + bw / 2, y); else ctx.lineTo(a.x + i * bw + bw / 2, y);
    }
    ctx.strokeStyle = "rgba(214,51,108,.8)";
    ctx.lineWidth = 1.2;
    ctx.stroke();
    box.dataset.drawn = String(n);
  };
  draw();
  box.onmousemove = (ev) => {
    const x = ev.clientX - box.getBoundingClientRect().left, i = Math.floor(((x - a.x) / a.w) * n);
    if (i < 0 || i >= n) { MS.tip(); draw(); return; }
    draw(i);
    MS.tip(ev, [
      [`+${MS.dur(i * r.width)} … +${MS.dur((i + 1) * r.width)}`, "t"],
      [`${MS.count(r.allocs[i])} allocations (${MS.bytes(r.bytes[i])})`, ""],
      [`${MS.count(r.frees[i])} frees (red line)`, "m"],
    ]);
  };
  box.onmouseleave = () => { MS.tip(); draw(); };
  return draw;
};

// Lifetimes in octaves (powers of two of nanoseconds), on a log time axis.
// `site` (a site row) adds that site's bars from the listed records and its
// exact min/p50/p99/max markers; the global shape stays as an outline.
MS.lifetimes = (box, p, caption) => {
  const g = p.lifetimes.global, col = Object.fromEntries(p.sites.cols.map((c, i) => [c, i]));
  let site = null, bars = [];
  const draw = () => {
    const { ctx, w, h } = MS.canvas(box);
    const a = area(w, h);
    const own = site ? (p.lifetimes.sites[site[col.id]] || []) : [];
    const octs = g.map((b) => b[0]).concat(own.map((b) => b[0]));
    if (site) octs.push(Math.log2(Math.max(1, site[col.lifetime_min])), Math.log2(Math.max(1, site[col.lifetime_max])));
    const lo = Math.max(0, Math.floor(Math.min(...octs, 40)) - 1), hi = Math.ceil(Math.max(...octs, 0)) + 2;
    const X = (o) => a.x + ((o - lo) / (hi - lo)) * a.w;
    const primary = site ? own : g.map((b) => [b[0], b[1]]);
    const max = Math.max(1, ...primary.map((b) => b[1])) * 1.1;
    MS.yAxis(ctx, a, max / 1.1, (v) => MS.count(Math.round(v)));
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillStyle = "#687086";
    const marks = [[1, "1 ns"], [10, "10 ns"], [100, "100 ns"], [1e3, "1 µs"], [1e4, "10 µs"], [1e5, "100 µs"], [1e6, "1 ms"],
      [1e7, "10 ms"], [1e8, "100 ms"], [1e9, "1 s"], [1e10, "10 s"], [60e9, "1 min"], [600e9, "10 min"], [3600e9, "1 h"]];
    for (const [ns, label] of marks) {
      const o = Math.log2(ns);
      if (o < lo || o > hi) continue;
      ctx.fillText(label, X(o), a.y + a.h + 5);
      ctx.fillRect(X(o), a.y + a.h, 1, 4);
    }
    const bw = a.w / (hi - lo);
    bars = [];
    if (site) {
      const gmax = Math.max(1, ...g.map((b) => b[1]));
      ctx.strokeStyle = "#b7bfcf";
      for (const [o, n] of g) ctx.strokeRect(X(o) + 1.5, a.y + a.h - (n / gmax) * a.h / 1.1, bw - 3, (n / gmax) * a.h / 1.1);
    }
    for (const [o, n] of primary) {
      const bh = (n / max) * a.h;
      ctx.fillStyle = o < Math.log2(1e6) ? "#f08c00" : o < Math.log2(1e9) ? "#4c9a8b" : "#2f6fdd";
      ctx.fillRect(X(o) + 1, a.y + a.h - bh, bw - 2, bh);
      bars.push([o, n, X(o), bw]);
    }
    if (site) {
      const markers = [["lifetime_min", "min"], ["lifetime_p50", "p50"], ["lifetime_p99", "p99"], ["lifetime_max", "max"]];
      for (const [n, [k, label]] of markers.entries()) {
        const x = X(Math.log2(Math.max(1, site[col[k]])));
        ctx.strokeStyle = ctx.fillStyle = k === "lifetime_p50" || k === "lifetime_p99" ? "#d6336c" : "#687086";
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(x, a.y + 2);
        ctx.lineTo(x, a.y + a.h);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.textBaseline = "top";
        ctx.fillText(label, x, a.y + (n % 2) * 12 - 12);
      }
    }
    box.dataset.drawn = String(primary.length);
    return a;
  };
  const describe = () => {
    const total = g.reduce((s, b) => s + b[1], 0);
    if (!site) {
      const short = g.filter((b) => b[0] < Math.log2(1e6)).reduce((s, b) => s + b[1], 0);
      const long = g.filter((b) => b[0] >= Math.log2(1e9)).reduce((s, b) => s + b[1], 0);
      caption.textContent = `All ${MS.count(total)} blocks, freed or live at exit, by how long they lived ` +
        `(each bar one doubling of time): ${MS.pct(short, total)} under 1 ms (orange), ${MS.pct(long, total)} ` +
        `1 s or longer (blue). Select a site in the table above to see its own.`;
    } else {
      const listed = (p.lifetimes.sites[site[col.id]] || []).reduce((s, b) => s + b[1], 0);
      caption.textContent = `Site ${site[col.id]}: ${MS.count(site[col.allocations])} blocks, p50 ${MS.dur(site[col.lifetime_p50])}, ` +
        `p99 ${MS.dur(site[col.lifetime_p99])} (markers are exact); bars from ${MS.count(listed)} listed blocks; outline: all sites.`;
    }
  };
  let a = draw();
  describe();
  box.onmousemove = (ev) => {
    const x = ev.clientX - box.getBoundingClientRect().left, b = bars.find((b) => x >= b[2] && x < b[2] + b[3]);
    if (!b) { MS.tip(); return; }
    const lo = b[0] === 0 ? 0 : Math.pow(2, b[0]), hi = Math.pow(2, b[0] + 1) - 1;
    MS.tip(ev, [[`${MS.dur(lo)} … ${MS.dur(hi)}`, "t"], [`${MS.count(b[1])} blocks`, ""]]);
  };
  box.onmouseleave = () => MS.tip();
  return {
    redraw: () => { a = draw(); },
    select: (row) => { site = row; a = draw(); describe(); },
  };
};
