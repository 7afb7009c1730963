//! DHAT's output format (`dhatFileVersion` 2, as valgrind's dh_main.c
//! writes it and dh_view.html reads it): one program point (`pps`) per call
//! site, frames as indices into `ftbl`, whose entry 0 is `[root]`.
//!
//! Time is in nanoseconds since the process started (`"tu": "ns"`). Per
//! site: `tb`/`tbk` total bytes/blocks (blocks = allocations + reallocs, as
//! DHAT counts), `tl` total lifetime, `mb`/`mbk` the site's own maximum and
//! the blocks at that moment, `gb`/`gbk` at the global peak (t-gmax),
//! `eb`/`ebk` at the end. `tl`, `mbk` and `gbk` come from the site's
//! aggregates; a snapshot written before memscope kept them has only its
//! individual records to tell, and when some were omitted they are
//! estimated from the rest.

use crate::sites::frame_label;
use memscope_format::{Allocation, Callsite, Snapshot};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, Write};

/// What the individual records say about one site.
#[derive(Default)]
struct FromRecords {
    listed: u64,
    lifetime_sum: u128,
    /// Blocks live at the site's own byte maximum.
    max_blocks: u64,
    /// Blocks live at the global peak.
    at_peak_blocks: u64,
}

fn from_records(s: &Snapshot) -> HashMap<u64, FromRecords> {
    let mut by_site: HashMap<u64, Vec<&Allocation>> = HashMap::new();
    for a in &s.allocations {
        by_site.entry(a.callsite.unwrap_or(0)).or_default().push(a);
    }
    let peak = s.summary.peak_unix_ns;
    by_site
        .into_iter()
        .map(|(id, recs)| {
            let mut r = FromRecords {
                listed: recs.len() as u64,
                ..Default::default()
            };
            // Sweep the site's births and deaths; at equal times a death
            // goes first, as a realloc frees the old block before the new
            // one counts.
            let mut ev: Vec<(u64, i8, u64)> = Vec::with_capacity(recs.len() * 2);
            for a in &recs {
                r.lifetime_sum += a.lifetime_ns as u128;
                ev.push((a.timestamp_alloc, 1, a.size));
                if !a.is_leaked {
                    ev.push((a.timestamp_dealloc, -1, a.size));
                }
                if a.timestamp_alloc <= peak && (a.is_leaked || a.timestamp_dealloc > peak) {
                    r.at_peak_blocks += 1;
                }
            }
            ev.sort_unstable_by_key(|&(t, d, _)| (t, d));
            let (mut live_b, mut live_n, mut max_b) = (0u64, 0u64, 0u64);
            for (_, d, size) in ev {
                if d > 0 {
                    live_b += size;
                    live_n += 1;
                    if live_b > max_b || (max_b == 0 && r.max_blocks == 0) {
                        max_b = live_b;
                        r.max_blocks = live_n;
                    }
                } else {
                    live_b = live_b.saturating_sub(size);
                    live_n = live_n.saturating_sub(1);
                }
            }
            (id, r)
        })
        .collect()
}

/// The DHAT program point for one site.
fn pp(c: &Callsite, r: Option<&FromRecords>, complete: bool, fs: Vec<usize>) -> Value {
    let blocks = c.allocations + c.reallocs;
    let empty = FromRecords::default();
    let r = r.unwrap_or(&empty);
    let (tl, mbk, gbk) = if let Some((tl, mbk, gbk)) = c.dhat_aggregates() {
        (tl as u128, mbk, gbk)
    } else if complete {
        (r.lifetime_sum, r.max_blocks, r.at_peak_blocks)
    } else {
        let unlisted = blocks.saturating_sub(r.listed) as u128;
        let mbk = r.max_blocks.max(u64::from(c.peak_live_bytes > 0));
        let gbk = r.at_peak_blocks.max(u64::from(c.at_peak_bytes > 0));
        (r.lifetime_sum + unlisted * c.lifetime_ns.p50 as u128, mbk, gbk)
    };
    json!({
        "tb": c.bytes, "tbk": blocks, "tl": tl.min(u64::MAX as u128) as u64,
        "mb": c.peak_live_bytes, "mbk": mbk,
        "gb": c.at_peak_bytes, "gbk": gbk,
        "eb": c.live_at_exit_bytes, "ebk": c.live_at_exit_allocations,
        "fs": fs,
    })
}

/// Builds the whole DHAT document.
pub fn document(s: &Snapshot) -> Value {
    let start = s.process.start_unix_ns;
    let complete = s.summary.records_omitted == 0;
    let records = from_records(s);
    let mut ftbl: Vec<String> = vec!["[root]".into()];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut intern = |label: String| -> usize {
        *index.entry(label.clone()).or_insert_with(|| {
            ftbl.push(label);
            ftbl.len() - 1
        })
    };
    let pps: Vec<Value> = s
        .callsites
        .iter()
        .filter(|c| c.allocations + c.reallocs > 0)
        .map(|c| {
            let fs: Vec<usize> = if c.frames.is_empty() {
                vec![intern(
                    "0x0: ??? (no backtrace: recorded with MEMSCOPE_BACKTRACE=0)".into(),
                )]
            } else {
                s.frames_of(c)
                    .map(|f| {
                        let label = frame_label(f, s.module_of(f));
                        let text = if f.function.is_some() {
                            format!("{}: {label}", f.ip)
                        } else {
                            format!(
                                "{}: ??? {}",
                                f.ip,
                                label.strip_prefix(f.ip.as_str()).unwrap_or("").trim()
                            )
                        };
                        intern(text)
                    })
                    .collect()
            };
            pp(c, records.get(&c.id), complete, fs)
        })
        .collect();
    json!({
        "dhatFileVersion": 2,
        "mode": "heap",
        "verb": "Allocated",
        "bklt": true,
        "bkacc": false,
        "tu": "ns",
        "Mtu": "ms",
        "tuth": 1000,
        "cmd": s.process.argv.join(" "),
        "pid": s.process.pid,
        "te": s.process.end_unix_ns.saturating_sub(start),
        "tg": s.summary.peak_unix_ns.saturating_sub(start),
        "pps": pps,
        "ftbl": ftbl,
    })
}

pub fn write(s: &Snapshot, w: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &document(s)).map_err(io::Error::other)?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::tests::{frame, with_sites};

    fn rec(site: u64, size: u64, t0: u64, t1: u64, leaked: bool) -> Allocation {
        Allocation {
            ptr: "0x1".into(),
            size,
            kind: "malloc".into(),
            thread_id: 1,
            timestamp_alloc: t0,
            timestamp_dealloc: t1,
            lifetime_ns: t1 - t0,
            lifetime_ms: 0,
            is_leaked: leaked,
            callsite: Some(site),
            var_name: None,
            type_name: None,
            scope_name: None,
            inherited: false,
        }
    }

    #[test]
    fn program_points_carry_dhat_fields() {
        let mut s = with_sites(vec![
            (
                1,
                vec![
                    frame(0x10, Some("malloc"), None, None),
                    frame(0x20, Some("main"), Some("m.c"), Some(5)),
                ],
                3,
                60,
            ),
            (2, vec![frame(0x30, None, None, None)], 1, 8),
        ]);
        s.summary.peak_unix_ns = 3500;
        let a = &mut s.callsites[0];
        a.live_at_exit_bytes = 30;
        a.live_at_exit_allocations = 1;
        a.at_peak_bytes = 30;
        a.peak_live_bytes = 40;
        // site 1: 10 B at 2000..4000, 20 B at 3000..3200 (peak 30 B, 2 blocks), 30 B leaked from 3300.
        s.allocations = vec![
            rec(1, 10, 2000, 4000, false),
            rec(1, 20, 3000, 3200, false),
            rec(1, 30, 3300, 11000, true),
            rec(2, 8, 1500, 1600, false),
        ];
        let d = document(&s);
        assert_eq!(d["dhatFileVersion"], 2);
        assert_eq!(d["te"], 10000);
        assert_eq!(d["tg"], 2500);
        assert_eq!(d["ftbl"][0], "[root]");
        let p = &d["pps"][0];
        assert_eq!((p["tb"].as_u64(), p["tbk"].as_u64()), (Some(60), Some(3)));
        assert_eq!(p["tl"], 2000 + 200 + 7700);
        assert_eq!((p["mbk"].as_u64(), p["gbk"].as_u64()), (Some(2), Some(2)));
        assert_eq!((p["eb"].as_u64(), p["ebk"].as_u64()), (Some(30), Some(1)));
        let fs: Vec<String> = p["fs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| d["ftbl"][i.as_u64().unwrap() as usize].as_str().unwrap().to_string())
            .collect();
        assert_eq!(fs, ["0x10: malloc (in prog)", "0x20: main (m.c:5)"]);
        let q = &d["pps"][1];
        assert_eq!(d["ftbl"][q["fs"][0].as_u64().unwrap() as usize], "0x30: ??? (in prog)");
        assert_eq!(q["gbk"], 0);
    }
}
