// Renders the embedded snapshots. Data reaches the page through textContent
// only, never innerHTML, so nothing from the traced program is interpreted.
(function () {
  "use strict";
  const snapshots = JSON.parse(document.getElementById("memscope-data").textContent);
  const root = document.getElementById("report");
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const table = (rows) => {
    const t = el("table");
    for (const [k, v, cls] of rows) {
      const tr = el("tr");
      tr.appendChild(el("th", k));
      tr.appendChild(el("td", v, cls));
      t.appendChild(tr);
    }
    return t;
  };
  for (const s of snapshots) {
    const p = s.process, m = s.summary;
    root.appendChild(el("h2", `${p.exe} (pid ${p.pid})`));
    root.appendChild(table([
      ["argv", p.argv.join(" "), "text"],
      ["end", p.end + (p.exit_code !== undefined ? ` (exit code ${p.exit_code})` : "") + (p.signal !== undefined ? ` (signal ${p.signal})` : ""), "text"],
      ["total allocations", m.total_allocations],
      ["total allocated bytes", m.total_allocated_bytes],
      ["peak live bytes", m.peak_live_bytes],
      ["live at exit", `${m.live_at_exit_allocations} blocks, ${m.live_at_exit_bytes} bytes`],
      ["events dropped", m.events_dropped, m.events_dropped ? "loud" : undefined],
    ]));
  }
})();
