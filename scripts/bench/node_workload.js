// A deterministic, allocation-heavy node workload for the benchmarks
// (~0.5 s un-traced): objects, strings, arrays, a Map and JSON round trips,
// with most of it dropped again so the garbage collector runs.
"use strict";

function makeRecord(i) {
  return { id: i, name: "item-" + i, tags: ["t" + (i % 7), "t" + (i % 11)], score: i * 0.5 };
}

let index = new Map();
let checksum = 0;
for (let round = 0; round < 16; round++) {
  const records = [];
  for (let i = 0; i < 40000; i++) records.push(makeRecord(round * 40000 + i));
  const text = JSON.stringify(records.slice(0, 5000));
  checksum += JSON.parse(text).length + text.length;
  for (const r of records) {
    if (r.id % 13 === 0) index.set(r.name, r.tags.join(","));
  }
  checksum += records.map((r) => r.name.toUpperCase()).join("|").length;
  if (index.size > 20000) index = new Map();
}
console.log(checksum, index.size);
