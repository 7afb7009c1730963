//! What `top` shows, computed from successive light snapshots: pure
//! functions of the samples, so they are tested without a terminal.

use crate::sites::{site_key, site_names};
use memscope_format::Snapshot;
use std::collections::HashMap;

/// One refresh: a light snapshot and the process's resident memory.
pub struct Sample {
    pub snap: Snapshot,
    /// VmRSS from /proc/PID/status (bytes), when readable.
    pub rss: Option<u64>,
}

impl Sample {
    pub fn new(snap: Snapshot, pid: u32) -> Sample {
        Sample { snap, rss: rss_of(pid) }
    }
}

/// VmRSS of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss(&status)
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A site's line: its label and a figure.
pub struct SiteRow {
    pub label: String,
    pub live_bytes: u64,
    pub live_blocks: u64,
    pub growth: i128,
}

/// Everything the view draws.
pub struct State {
    /// Live bytes per site when the view started.
    start: HashMap<Vec<String>, u64>,
    pub started_ns: u64,
    pub first: Sample,
    pub prev: Option<Sample>,
    pub now: Sample,
}

impl State {
    pub fn new(first: Sample) -> State {
        let start = per_site(&first.snap).into_iter().map(|(k, (_, b, _))| (k, b)).collect();
        State {
            start,
            started_ns: first.snap.process.end_unix_ns,
            first: Sample {
                snap: first.snap.clone(),
                rss: first.rss,
            },
            prev: None,
            now: first,
        }
    }

    pub fn update(&mut self, s: Sample) {
        self.prev = Some(std::mem::replace(&mut self.now, s));
    }

    /// Allocations per second and bytes allocated per second since the
    /// previous refresh (since the start before the first one).
    pub fn rate(&self) -> (f64, f64) {
        let before = self.prev.as_ref().unwrap_or(&self.first);
        let (a, b) = (&before.snap, &self.now.snap);
        let secs = b.process.end_unix_ns.saturating_sub(a.process.end_unix_ns) as f64 / 1e9;
        if secs <= 0.0 {
            return (0.0, 0.0);
        }
        let blocks = |s: &Snapshot| s.summary.total_allocations + s.summary.reallocs;
        (
            blocks(b).saturating_sub(blocks(a)) as f64 / secs,
            b.summary
                .total_allocated_bytes
                .saturating_sub(a.summary.total_allocated_bytes) as f64
                / secs,
        )
    }

    /// Sites now, with their growth since the view started.
    pub fn sites(&self) -> Vec<SiteRow> {
        per_site(&self.now.snap)
            .into_iter()
            .map(|(k, (label, live_bytes, live_blocks))| {
                let growth = live_bytes as i128 - self.start.get(&k).copied().unwrap_or(0) as i128;
                SiteRow {
                    label,
                    live_bytes,
                    live_blocks,
                    growth,
                }
            })
            .collect()
    }

    /// The `n` sites with most live bytes now.
    pub fn top_live(&self, n: usize) -> Vec<SiteRow> {
        let mut v: Vec<SiteRow> = self.sites().into_iter().filter(|r| r.live_bytes > 0).collect();
        v.sort_by(|a, b| b.live_bytes.cmp(&a.live_bytes).then_with(|| a.label.cmp(&b.label)));
        v.truncate(n);
        v
    }

    /// The `n` sites whose live bytes grew most since the view started.
    pub fn top_growth(&self, n: usize) -> Vec<SiteRow> {
        let mut v: Vec<SiteRow> = self.sites().into_iter().filter(|r| r.growth > 0).collect();
        v.sort_by(|a, b| b.growth.cmp(&a.growth).then_with(|| a.label.cmp(&b.label)));
        v.truncate(n);
        v
    }
}

/// Site key → (label, live bytes, live blocks); sites that share a key
/// (same symbolized frames) are added up.
fn per_site(s: &Snapshot) -> HashMap<Vec<String>, (String, u64, u64)> {
    let names = site_names(s);
    let mut m: HashMap<Vec<String>, (String, u64, u64)> = HashMap::new();
    for c in &s.callsites {
        let label = || names.get(&c.id).cloned().unwrap_or_default();
        let e = m.entry(site_key(s, c)).or_insert_with(|| (label(), 0, 0));
        e.1 += c.live_at_exit_bytes;
        e.2 += c.live_at_exit_allocations;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::tests::{frame, with_sites};

    fn sample(sites: Vec<(u64, &'static str, u64)>, end_ns: u64, allocs: u64, bytes: u64) -> Sample {
        let mut s = with_sites(
            sites
                .iter()
                .map(|&(id, f, _)| {
                    (
                        id,
                        vec![frame(0x1000 * id, Some(f), Some("a.c"), Some(id as u32))],
                        1,
                        1,
                    )
                })
                .collect(),
        );
        for (c, &(_, _, live)) in s.callsites.iter_mut().zip(&sites) {
            c.live_at_exit_bytes = live;
            c.live_at_exit_allocations = 1;
        }
        s.process.end_unix_ns = end_ns;
        s.summary.total_allocations = allocs;
        s.summary.total_allocated_bytes = bytes;
        Sample {
            snap: s,
            rss: Some(4096),
        }
    }

    #[test]
    fn growth_since_the_start_and_rate_since_the_last_refresh() {
        let mut st = State::new(sample(
            vec![(1, "steady", 500), (2, "leaky", 100)],
            1_000_000_000,
            10,
            1000,
        ));
        st.update(sample(
            vec![(1, "steady", 500), (2, "leaky", 300)],
            2_000_000_000,
            110,
            5000,
        ));
        st.update(sample(
            vec![(1, "steady", 400), (2, "leaky", 900), (3, "fresh", 50)],
            3_000_000_000,
            410,
            6000,
        ));
        let live: Vec<String> = st.top_live(2).into_iter().map(|r| r.label).collect();
        assert_eq!(live, ["leaky (a.c:2)", "steady (a.c:1)"]);
        let grown: Vec<(String, i128)> = st.top_growth(5).into_iter().map(|r| (r.label, r.growth)).collect();
        assert_eq!(
            grown,
            [("leaky (a.c:2)".to_string(), 800), ("fresh (a.c:3)".to_string(), 50)]
        );
        assert_eq!(st.rate(), (300.0, 1000.0));
    }

    #[test]
    fn rss_from_proc_status() {
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t  1234 kB\n"), Some(1234 * 1024));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        assert!(rss_of(std::process::id()).is_some_and(|r| r > 0));
    }
}
