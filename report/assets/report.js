// Start-up: reads the embedded view model, draws each process's charts and
// wires the flamegraph, the site table and the lifetime chart together.
"use strict";

MS.sitesTable = (box, p, caption, onSelect) => {
  const rows = p.sites.rows, frames = p.frames, col = Object.fromEntries(p.sites.cols.map((c, i) => [c, i]));
  const columns = [
    ["site", null], ["allocations", "allocations", MS.count], ["bytes", "bytes", MS.bytes],
    ["peak live", "peak_live_bytes", MS.bytes], ["live at exit", "live_at_exit_bytes", MS.bytes],
    ["lifetime p50", "lifetime_p50", MS.dur], ["lifetime p99", "lifetime_p99", MS.dur], ["longest", "lifetime_max", MS.dur],
  ];
  let key = "bytes", dir = -1, text = "", range = null, shown = 100, selected = null, haystack = null;
  // Sites are named in Rust (memscope-sites): the caller past the
  // allocation wrappers, unique within the process.
  const top = (row) => {
    const st = row[col.stack];
    return st[Math.min(row[col.caller], st.length - 1)];
  };
  const frameText = (f) => {
    const fr = frames[f];
    return [fr[1] ? fr[1] + (fr[2] ? ":" + fr[2] : "") : "", fr[3] ? fr[3].split("/").pop() : "", fr[4] ? "inlined" : ""].filter(Boolean).join("  ");
  };
  const table = MS.el("table"), head = MS.el("tr"), body = MS.el("tbody"), more = MS.el("button", "", "more");
  table.appendChild(MS.el("thead")).appendChild(head);
  table.appendChild(body);
  box.append(table, more);
  for (const [name, k] of columns) {
    const th = MS.el("th", name, k ? "num" : "");
    th.onclick = () => {
      if (!k) return;
      dir = key === k ? -dir : -1;
      key = k;
      render();
    };
    th.dataset.key = k || "";
    head.appendChild(th);
  }
  more.onclick = () => { shown += 200; render(); };

  const visible = () => {
    let v = rows;
    if (range) v = v.filter((r) => r[col.node] >= range[0] && r[col.node] < range[1]);
    if (text) {
      haystack = haystack || rows.map((r) => ("#" + r[col.id] + " " + r[col.stack].map((f) => frames[f].slice(0, 4).join(" ")).join(" ")).toLowerCase());
      const idx = new Map(rows.map((r, i) => [r, i]));
      v = v.filter((r) => haystack[idx.get(r)].includes(text));
    }
    const c = col[key];
    return v.slice().sort((a, b) => dir * (a[c] - b[c]) || a[col.id] - b[col.id]);
  };
  const stackRow = (row) => {
    const tr = MS.el("tr", null, "stackrow"), td = MS.el("td");
    td.colSpan = columns.length;
    if (!row[col.stack].length) td.appendChild(MS.el("p", "No stack recorded (backtraces off: MEMSCOPE_BACKTRACE=0).", "note"));
    const ol = td.appendChild(MS.el("ol", null, "stack"));
    for (const [k, f] of row[col.stack].entries()) {
      const li = ol.appendChild(MS.el("li", null, k < row[col.caller] ? "wrapper" : ""));
      li.append(MS.el("span", frames[f][0], "fn"), MS.el("span", frameText(f), "loc"));
    }
    tr.appendChild(td);
    return tr;
  };
  const render = () => {
    const v = visible();
    for (const th of head.children) th.dataset.dir = th.dataset.key === key ? (dir < 0 ? "desc" : "asc") : "";
    const out = [];
    for (const row of v.slice(0, shown)) {
      const tr = MS.el("tr");
      tr.dataset.site = row[col.id];
      const f = top(row), name = MS.el("td", null, "site");
      name.append(MS.el("span", f === undefined ? "[no stack]" : row[col.name], "fn"), MS.el("span", "site " + row[col.id] + (f === undefined ? "" : "  ·  " + frameText(f)), "loc"));
      tr.appendChild(name);
      for (const [, k, fmt] of columns.slice(1)) {
        const td = MS.el("td", fmt(row[col[k]]), "num");
        td.dataset.v = row[col[k]];
        tr.appendChild(td);
      }
      tr.onclick = () => { selected = selected === row ? null : row; onSelect(selected); render(); };
      out.push(tr);
      if (row === selected) { tr.className = "selected"; out.push(stackRow(row)); }
    }
    body.replaceChildren(...out);
    more.hidden = v.length <= shown;
    more.textContent = `show ${Math.min(200, v.length - shown)} more`;
    caption.textContent = `${MS.count(v.length)} of ${MS.count(rows.length)} sites` +
      (range ? ` under ${range[2]}` : "") + " · click a row for its stack and lifetimes";
    box.dataset.drawn = String(out.length);
  };
  render();
  return {
    filter: (t) => { text = t.trim().toLowerCase(); shown = 100; render(); },
    range: (r) => { range = r; shown = 100; render(); },
  };
};

// Static tables: click a header to sort by it, type to filter rows.
const sortable = (table) => {
  const ths = [...table.tHead.rows[0].cells];
  ths.forEach((th, c) => {
    th.onclick = () => {
      const dir = th.dataset.dir === "desc" ? 1 : -1, num = th.dataset.type === "num";
      ths.forEach((o) => { o.dataset.dir = ""; });
      th.dataset.dir = dir < 0 ? "desc" : "asc";
      const val = (tr) => (num ? Number(tr.cells[c].dataset.v ?? tr.cells[c].textContent) : tr.cells[c].textContent.toLowerCase());
      const rows = [...table.tBodies[0].rows].sort((a, b) => {
        const x = val(a), y = val(b);
        return dir * (x < y ? -1 : x > y ? 1 : 0);
      });
      table.tBodies[0].append(...rows);
    };
  });
};

// Drives every control once and puts it back, so that an error in an
// interactive path shows up in the browser test too.
const selftest = () => {
  const fire = (el, type, init) => el.dispatchEvent(new MouseEvent(type, init));
  const set = (el, value, type) => { el.value = value; el.dispatchEvent(new Event(type)); };
  for (const sec of document.querySelectorAll("section.process")) {
    const q = (s) => sec.querySelector(s);
    q("[data-table=sites] tbody tr").click();
    q("[data-table=sites] tbody tr").click();
    const heads = sec.querySelectorAll("[data-table=sites] th");
    heads[1].click();
    heads[2].click();
    set(q("[data-ctl=search]"), "main", "input");
    set(q("[data-ctl=search]"), "", "input");
    for (const m of ["n", "l", "b"]) set(q("[data-ctl=metric]"), m, "change");
    set(q("[data-ctl=filter]"), "site", "input");
    set(q("[data-ctl=filter]"), "", "input");
    const flame = q("[data-chart=flame]"), r = flame.querySelector("canvas").getBoundingClientRect();
    const at = { clientX: r.left + 4, clientY: r.top + 22 };
    fire(flame, "mousemove", at);
    fire(flame, "click", at);
    q("[data-ctl=reset]").click();
    for (const chart of ["timeline", "rate", "lifetimes"]) {
      const box = q(`[data-chart=${chart}]`), b = box.getBoundingClientRect();
      fire(box, "mousemove", { clientX: b.left + b.width / 2, clientY: b.top + b.height / 2 });
      fire(box, "mouseleave", {});
    }
  }
  document.querySelectorAll("table.sortable th").forEach((th) => th.click());
  document.documentElement.dataset.selftest = "ok";
};

(() => {
  const data = JSON.parse(document.getElementById("memscope-data").textContent);
  document.querySelectorAll("table.sortable").forEach(sortable);
  document.querySelectorAll("input[data-filter]").forEach((input) => {
    const table = document.getElementById(input.dataset.filter);
    input.oninput = () => {
      const q = input.value.trim().toLowerCase();
      for (const tr of table.tBodies[0].rows) tr.hidden = q !== "" && !tr.textContent.toLowerCase().includes(q);
    };
  });
  const redraws = [];
  // Sections exist for the detailed processes only; each finds its data
  // by its anchor.
  const byAnchor = new Map(data.processes.map((p) => [p.anchor, p]));
  const draw = (sec) => {
    if (sec.dataset.drawn) return;
    sec.dataset.drawn = "1";
    const p = byAnchor.get(sec.id);
    const q = (s) => sec.querySelector(s);
    redraws.push(MS.timeline(q("[data-chart=timeline]"), p));
    redraws.push(MS.rate(q("[data-chart=rate]"), p, q("[data-caption=rate]")));
    const life = MS.lifetimes(q("[data-chart=lifetimes]"), p, q("[data-caption=lifetimes]"));
    let table = null;
    const flame = MS.flame(q("[data-chart=flame]"), p, q("[data-caption=flame]"), (r) => table && table.range(r));
    const node = p.sites.cols.indexOf("node");
    table = MS.sitesTable(q("[data-table=sites]"), p, q("[data-caption=sites]"), (row) => {
      life.select(row);
      flame.mark(row ? row[node] : -1);
    });
    redraws.push(life.redraw, flame.redraw);
    q("[data-ctl=metric]").onchange = (e) => flame.metric(e.target.value);
    q("[data-ctl=search]").oninput = (e) => flame.search(e.target.value);
    q("[data-ctl=reset]").onclick = () => flame.reset();
    q("[data-ctl=filter]").oninput = (e) => table.filter(e.target.value);
  };
  // A section costs tens of milliseconds to draw: those on or near the
  // screen are drawn now, the others when they scroll near it, so a run
  // of many processes opens as fast as one. #selftest draws everything.
  const sections = [...document.querySelectorAll("section.process")];
  const near = 800;
  if (location.hash === "#selftest" || !("IntersectionObserver" in window)) {
    sections.forEach(draw);
  } else {
    sections.filter((sec) => sec.getBoundingClientRect().top < window.innerHeight + near).forEach(draw);
    const watch = new IntersectionObserver((seen) => {
      for (const e of seen) {
        if (!e.isIntersecting) continue;
        watch.unobserve(e.target);
        draw(e.target);
      }
    }, { rootMargin: `${near}px 0px` });
    sections.filter((sec) => !sec.dataset.drawn).forEach((sec) => watch.observe(sec));
  }
  let pending = 0;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => redraws.forEach((f) => f()), 150);
  });
  // Milliseconds from navigation start to the first screen drawn.
  document.documentElement.dataset.renderMs = String(Math.round(performance.now()));
  // With #selftest in the address each canvas states how many pixels it
  // painted (data-ink): the browser test's proof that charts are drawn.
  if (location.hash === "#selftest") {
    for (const c of document.querySelectorAll("canvas")) {
      const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) ink++;
      c.dataset.ink = String(ink);
    }
    selftest();
  }
  document.documentElement.dataset.ready = "1";
})();
