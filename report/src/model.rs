//! The compact view model the page's scripts draw from.
//!
//! A snapshot can hold a million records and 50 000 call sites; the browser
//! must not walk those. Everything is aggregated here into bounded arrays
//! (timeline points, rate buckets, octave histograms, site rows, a merged
//! call tree) and embedded as one JSON value. Times are nanosecond offsets
//! from the process's origin: absolute UNIX nanoseconds do not fit in a JS
//! number exactly.

use crate::flame;
use memscope_format::{Callsite, Frame, Snapshot, TimelinePoint};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Timeline points kept for the chart (min/max per bucket beyond this).
const MAX_TIMELINE_POINTS: usize = 4000;
/// Buckets of the allocation-rate chart.
const RATE_BUCKETS: usize = 120;
/// Sites that get a per-site lifetime histogram (by allocations).
const MAX_SITE_HISTOGRAMS: usize = 2000;

/// The time every offset of a process is measured from: its start, or an
/// earlier event a forked child inherited.
pub fn origin(s: &Snapshot) -> u64 {
    let first_point = s.timeline.first().map_or(u64::MAX, |p| p.0);
    let first_record = s
        .allocations
        .iter()
        .map(|a| a.timestamp_alloc)
        .min()
        .unwrap_or(u64::MAX);
    s.process
        .start_unix_ns
        .min(first_point)
        .min(first_record)
        .min(s.summary.peak_unix_ns)
}

/// Interns frames so each distinct frame is sent once.
#[derive(Default)]
pub struct FrameTable {
    index: HashMap<FrameKey, usize>,
    pub rows: Vec<Value>,
}

#[derive(Hash, PartialEq, Eq)]
struct FrameKey(String, Option<String>, Option<u32>, Option<String>, bool);

impl FrameTable {
    /// `[label, file, line, module, inlined]`; the label is the function or,
    /// unresolved, the address. `module` is the frame's module path.
    pub fn intern(&mut self, f: &Frame, module: Option<&str>) -> usize {
        let label = f.function.clone().unwrap_or_else(|| f.ip.clone());
        let key = FrameKey(label, f.file.clone(), f.line, module.map(str::to_owned), f.inlined);
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.rows.len();
        self.rows.push(json!([key.0, key.1, key.2, key.3, key.4]));
        self.index.insert(key, i);
        i
    }
}

/// The view model of one process image; `names`: per site its caller
/// index and name ([`memscope_sites::site_names`]).
pub fn process(s: &Snapshot, index: usize, names: &[(usize, String)]) -> Value {
    let t0 = origin(s);
    let mut frames = FrameTable::default();
    let stacks: Vec<Vec<usize>> = s
        .callsites
        .iter()
        .map(|c| s.frames_of(c).map(|f| frames.intern(f, s.module_of(f))).collect())
        .collect();
    let tree = flame::build(&s.callsites, &stacks);
    // Frames that are an allocation wrapper in some stack: the flamegraph
    // draws them dimmed.
    let mut wrappers: Vec<usize> = stacks
        .iter()
        .zip(names)
        .flat_map(|(st, (caller, _))| st[..(*caller).min(st.len())].iter().copied())
        .collect();
    wrappers.sort_unstable();
    wrappers.dedup();
    let mut v = json!({
        "anchor": format!("proc-{index}"),
        "pid": s.process.pid,
        "end_t": s.process.end_unix_ns.saturating_sub(t0),
        "start_t": s.process.start_unix_ns.saturating_sub(t0),
        "summary": {
            "peak_live_bytes": s.summary.peak_live_bytes,
            "peak_t": s.summary.peak_unix_ns.saturating_sub(t0),
            "total_allocations": s.summary.total_allocations,
            "total_allocated_bytes": s.summary.total_allocated_bytes,
            "live_at_exit_bytes": s.summary.live_at_exit_bytes,
            "blocks": s.summary.total_allocations + s.summary.reallocs,
        },
        "timeline": timeline(s, t0),
        "rate": rate(s, t0),
        "lifetimes": lifetimes(s),
        "frames": frames.rows,
        "wrappers": wrappers,
        "sites": sites(&s.callsites, &stacks, &tree.leaf_of_site, names),
        "flame": tree.json,
    });
    resident(&mut v, s);
    v
}

/// The resident figures (snapshots since issue 15), only where present so
/// older snapshots give the same model.
fn resident(v: &mut Value, s: &Snapshot) {
    if let Some(rss) = s.summary.peak_rss_bytes {
        v["summary"]["peak_rss_bytes"] = rss.into();
    }
    if memscope_format::resident::mostly_outside_malloc(&s.summary) {
        v["summary"]["outside_malloc"] = memscope_format::resident::OUTSIDE_MALLOC.into();
    }
}

/// `{t: [...], b: [...]}`: the live-bytes step function, bounded, with the
/// peak kept exactly; `r: [...]` beside them, the resident bytes (null
/// where not sampled), when the snapshot has any.
fn timeline(s: &Snapshot, t0: u64) -> Value {
    let pts: Vec<TimelinePoint> = s
        .timeline
        .iter()
        .map(|p| TimelinePoint(p.0.saturating_sub(t0), p.1, p.2))
        .collect();
    let kept = if pts.len() <= MAX_TIMELINE_POINTS {
        pts
    } else {
        downsample(&pts, MAX_TIMELINE_POINTS / 2)
    };
    let t: Vec<u64> = kept.iter().map(|p| p.0).collect();
    let b: Vec<u64> = kept.iter().map(|p| p.1).collect();
    if kept.iter().any(|p| p.2.is_some()) {
        let r: Vec<Option<u64>> = kept.iter().map(|p| p.2).collect();
        return json!({ "t": t, "b": b, "r": r });
    }
    json!({ "t": t, "b": b })
}

/// Keeps the first, the lowest and the highest point of each of `buckets`
/// equal time slices, in time order, so spikes (and the peak) survive.
fn downsample(pts: &[TimelinePoint], buckets: usize) -> Vec<TimelinePoint> {
    let (first, last) = (pts[0].0, pts[pts.len() - 1].0);
    let span = (last - first).max(1) as u128;
    let mut out = Vec::with_capacity(buckets * 3 + 1);
    let mut start = 0;
    while start < pts.len() {
        let slice = ((pts[start].0 - first) as u128 * buckets as u128 / span) as usize;
        let mut end = start + 1;
        while end < pts.len() && ((pts[end].0 - first) as u128 * buckets as u128 / span) as usize == slice {
            end += 1;
        }
        let part = &pts[start..end];
        let lo = part.iter().enumerate().min_by_key(|(_, p)| p.1).map_or(0, |(i, _)| i);
        let hi = part.iter().enumerate().max_by_key(|(_, p)| p.1).map_or(0, |(i, _)| i);
        let mut picks = vec![0, lo, hi, part.len() - 1];
        picks.sort_unstable();
        picks.dedup();
        out.extend(picks.into_iter().map(|i| part[i]));
        start = end;
    }
    out
}

/// Allocations and frees per time bucket, from the listed records. When
/// records were capped the chart says it shows a sample.
fn rate(s: &Snapshot, t0: u64) -> Value {
    let end = s.process.end_unix_ns.saturating_sub(t0).max(1);
    let width = end.div_ceil(RATE_BUCKETS as u64).max(1);
    let mut allocs = vec![0u64; RATE_BUCKETS];
    let mut bytes = vec![0u64; RATE_BUCKETS];
    let mut frees = vec![0u64; RATE_BUCKETS];
    let slot = |t: u64| ((t.saturating_sub(t0) / width) as usize).min(RATE_BUCKETS - 1);
    for a in &s.allocations {
        let i = slot(a.timestamp_alloc);
        allocs[i] += 1;
        bytes[i] += a.size;
        if !s.live_at_end(a) {
            frees[slot(a.timestamp_dealloc)] += 1;
        }
    }
    json!({
        "width": width,
        "allocs": allocs,
        "bytes": bytes,
        "frees": frees,
        "records": s.allocations.len(),
        "omitted": s.summary.records_omitted,
    })
}

/// Octave (power-of-two) index of a lifetime: 0 holds 0 and 1 ns.
fn octave(ns: u64) -> usize {
    if ns < 2 {
        0
    } else {
        63 - ns.leading_zeros() as usize
    }
}

/// The global histogram regrouped by octave (`[[octave, count, bytes]]`,
/// exact: every block), and per-site octave counts from the listed records
/// for the busiest sites.
fn lifetimes(s: &Snapshot) -> Value {
    let mut octaves: BTreeMap<u64, [u64; 2]> = BTreeMap::new();
    for b in &s.lifetime_histogram {
        let o = octaves.entry(octave(b.lower_ns) as u64).or_default();
        o[0] += b.count;
        o[1] += b.bytes;
    }
    let global: Vec<[u64; 3]> = octaves.into_iter().map(|(o, [n, b])| [o, n, b]).collect();
    let mut busiest: Vec<&Callsite> = s.callsites.iter().collect();
    busiest.sort_by(|a, b| b.allocations.cmp(&a.allocations).then(a.id.cmp(&b.id)));
    busiest.truncate(MAX_SITE_HISTOGRAMS);
    let mut per_site: HashMap<u64, [u64; 64]> = busiest.iter().map(|c| (c.id, [0; 64])).collect();
    for a in &s.allocations {
        if let Some(h) = a.callsite.and_then(|c| per_site.get_mut(&c)) {
            h[octave(a.lifetime_ns)] += 1;
        }
    }
    let mut ids: Vec<u64> = per_site.keys().copied().collect();
    ids.sort_unstable();
    let sites: serde_json::Map<String, Value> = ids
        .into_iter()
        .filter_map(|id| {
            let h = &per_site[&id];
            let sparse: Vec<[u64; 2]> = (0..64).filter(|&o| h[o] != 0).map(|o| [o as u64, h[o]]).collect();
            (!sparse.is_empty()).then(|| (id.to_string(), json!(sparse)))
        })
        .collect();
    json!({ "global": global, "sites": sites, "records": s.allocations.len() })
}

/// Column names of a site row, in order.
pub const SITE_COLUMNS: [&str; 16] = [
    "id",
    "allocations",
    "bytes",
    "peak_live_bytes",
    "live_at_exit_bytes",
    "live_at_exit_allocations",
    "reallocs",
    "at_peak_bytes",
    "lifetime_min",
    "lifetime_p50",
    "lifetime_p99",
    "lifetime_max",
    "stack",
    "node",
    "name",
    "caller",
];

/// One row per site (see [`SITE_COLUMNS`]); `stack` is frame indices,
/// innermost first; `node` the site's leaf in the flame tree (-1 if pruned);
/// `name` what the site is called, `caller` the position in `stack` of the
/// first frame that is no allocation wrapper.
fn sites(callsites: &[Callsite], stacks: &[Vec<usize>], leaf_of_site: &[i64], names: &[(usize, String)]) -> Value {
    let rows: Vec<Value> = callsites
        .iter()
        .zip(stacks)
        .zip(leaf_of_site)
        .zip(names)
        .map(|(((c, st), node), (caller, name))| {
            json!([
                c.id,
                c.allocations,
                c.bytes,
                c.peak_live_bytes,
                c.live_at_exit_bytes,
                c.live_at_exit_allocations,
                c.reallocs,
                c.at_peak_bytes,
                c.lifetime_ns.min,
                c.lifetime_ns.p50,
                c.lifetime_ns.p99,
                c.lifetime_ns.max,
                st,
                node,
                name,
                caller
            ])
        })
        .collect();
    json!({ "cols": SITE_COLUMNS, "rows": rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_extremes_and_order() {
        let pts: Vec<TimelinePoint> = (0..100_000u64)
            .map(|i| TimelinePoint(i * 10, (i * 7919) % 1000, Some(i)))
            .collect();
        let mut spiky = pts.clone();
        spiky[54_321].1 = 5000;
        let d = downsample(&spiky, 100);
        assert!(d.len() <= 100 * 4 + 4);
        assert!(d.contains(&TimelinePoint(543_210, 5000, Some(54_321))));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(d.first(), spiky.first());
        assert_eq!(d.last(), spiky.last());
    }

    #[test]
    fn octaves() {
        assert_eq!([octave(0), octave(1), octave(2), octave(3), octave(4)], [0, 0, 1, 1, 2]);
        assert_eq!(octave(1 << 40), 40);
        assert_eq!(octave(u64::MAX), 63);
    }
}
