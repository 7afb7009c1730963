// Helpers shared by the report's scripts. Program-controlled text reaches
// the page only through textContent (MS.el, MS.tip) or canvas fillText.
"use strict";
const MS = {};

// Any script error is shown on the page and counted on <html data-errors>,
// so a reader (and the browser test) cannot miss a broken report.
window.addEventListener("error", (e) => {
  const html = document.documentElement;
  html.dataset.errors = String(Number(html.dataset.errors || 0) + 1);
  const bar = MS.el("div", "Report script error: " + (e.message || e.error), "js-error");
  bar.setAttribute("data-js-error", "");
  document.body.insertBefore(bar, document.body.firstChild);
});

MS.el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
};

const sig3 = (v) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));
MS.count = (n) => Number(n).toLocaleString("en-US");
MS.bytes = (n) => {
  if (n < 1024) return Math.round(n) + " B";
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return sig3(v) + " " + units[u];
};
MS.dur = (ns) => {
  if (ns < 1e3) return Math.round(ns) + " ns";
  if (ns < 1e6) return sig3(ns / 1e3) + " µs";
  if (ns < 1e9) return sig3(ns / 1e6) + " ms";
  if (ns < 120e9) return sig3(ns / 1e9) + " s";
  const s = Math.floor(ns / 1e9);
  return s < 7200 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor(s / 60) % 60} min`;
};
MS.pct = (part, whole) => {
  if (!(whole > 0)) return "–";
  if (part === 0) return "0%";
  const v = (100 * part) / whole, s = v.toFixed(v < 0.1 ? 2 : 1);
  return (part < whole && s.startsWith("100") ? ">99.9" : part > 0 && Number(s) === 0 ? "<0.01" : s) + "%";
};

// Sizes a canvas to its box at the device's pixel ratio; returns a context
// in CSS pixels.
MS.canvas = (box, height) => {
  const c = box.querySelector("canvas");
  const w = Math.max(200, box.clientWidth), h = height || box.clientHeight;
  const r = window.devicePixelRatio || 1;
  c.width = Math.round(w * r);
  c.height = Math.round(h * r);
  c.style.height = h + "px";
  const ctx = c.getContext("2d");
  ctx.setTransform(r, 0, 0, r, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { c, ctx, w, h };
};

// About `n` round tick values from 0 to max: 1, 2 or 5 times a power of
// ten, of a power of 1024 when `base` is 1024 (so bytes get 256 KiB steps).
MS.ticks = (max, n, base) => {
  if (!(max > 0)) return [0];
  const raw = max / n;
  const unit = base === 1024 ? Math.pow(1024, Math.max(0, Math.floor(Math.log(max) / Math.log(1024)))) : 1;
  const p = Math.pow(10, Math.floor(Math.log10(raw / unit))) * unit;
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  const out = [];
  for (let i = 0; i * step <= max * 1.0001; i++) out.push(i * step);
  return out;
};

// One tooltip for the whole page; `lines` are [text, class] pairs.
MS.tip = (ev, lines) => {
  const t = document.getElementById("tooltip");
  if (!lines) { t.hidden = true; return; }
  t.replaceChildren(...lines.map(([text, cls]) => MS.el("div", text, cls)));
  t.hidden = false;
  const pad = 14, r = t.getBoundingClientRect();
  let x = ev.clientX + pad, y = ev.clientY + pad;
  if (x + r.width > window.innerWidth) x = ev.clientX - r.width - pad;
  if (y + r.height > window.innerHeight) y = ev.clientY - r.height - pad;
  t.style.left = Math.max(0, x) + "px";
  t.style.top = Math.max(0, y) + "px";
};

// Draws the horizontal grid and left-hand labels of a chart area.
MS.yAxis = (ctx, area, max, fmt, base) => {
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of MS.ticks(max, 4, base)) {
    const y = area.y + area.h - (v / max) * area.h;
    ctx.strokeStyle = v === 0 ? "#c4c9d4" : "#edf0f4";
    ctx.beginPath();
    ctx.moveTo(area.x, Math.round(y) + 0.5);
    ctx.lineTo(area.x + area.w, Math.round(y) + 0.5);
    ctx.stroke();
    ctx.fillStyle = "#687086";
    ctx.fillText(fmt(v), area.x - 6, y);
  }
};

// Time labels under a chart area spanning [0, span] ns.
MS.xTime = (ctx, area, span) => {
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.fillStyle = "#687086";
  for (const v of MS.ticks(span, 8)) {
    const x = area.x + (v / span) * area.w;
    ctx.fillText("+" + MS.dur(v), x, area.y + area.h + 5);
  }
};
