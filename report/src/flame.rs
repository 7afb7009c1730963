//! The call tree behind the flamegraph: every site's stack merged from the
//! outermost frame down, each node carrying the bytes, allocations and
//! live-at-exit bytes of the sites beneath it.
//!
//! Built here rather than in the browser so the page gets one small tree
//! instead of 50 000 stacks. Nodes too small to see even zoomed far in are
//! pruned; their parent keeps their weight as self area.

use memscope_format::Callsite;
use serde_json::{json, Value};
use std::collections::HashMap;

/// A node is kept when, for some metric, it holds at least
/// 1/`PRUNE_DIVISOR` of the total.
const PRUNE_DIVISOR: u128 = 200_000;
/// Nodes sent at most: beyond this the smallest are pruned, keeping the
/// page's data to a few megabytes for any number of sites.
pub const MAX_NODES: usize = 100_000;
/// Frame index of the root ("all").
pub const ROOT: i64 = -1;
/// Frame index standing for a site without frames (backtraces off).
pub const NO_STACK: i64 = -2;

pub struct Tree {
    /// `{f, p, b, n, l, pruned}`: per node (pre-order) its frame index,
    /// parent node, bytes, allocations and live-at-exit bytes.
    pub json: Value,
    /// Per callsite (in input order) its leaf node, or -1 when pruned.
    pub leaf_of_site: Vec<i64>,
}

/// Merges `stacks` (frame indices, innermost first, one per callsite).
pub fn build(callsites: &[Callsite], stacks: &[Vec<usize>]) -> Tree {
    build_within(callsites, stacks, MAX_NODES)
}

fn build_within(callsites: &[Callsite], stacks: &[Vec<usize>], max_nodes: usize) -> Tree {
    let mut frame = vec![ROOT];
    let mut parent = vec![usize::MAX];
    let mut val = vec![[0u64; 3]];
    let mut child: HashMap<(usize, i64), usize> = HashMap::new();
    let mut leaf = Vec::with_capacity(callsites.len());
    for (c, stack) in callsites.iter().zip(stacks) {
        let v = [c.bytes, c.allocations, c.live_at_exit_bytes];
        add(&mut val[0], v);
        let path: Vec<i64> = if stack.is_empty() {
            vec![NO_STACK]
        } else {
            stack.iter().rev().map(|&f| f as i64).collect()
        };
        let mut node = 0;
        for f in path {
            node = *child.entry((node, f)).or_insert_with(|| {
                frame.push(f);
                parent.push(node);
                val.push([0; 3]);
                val.len() - 1
            });
            add(&mut val[node], v);
        }
        leaf.push(node);
    }
    let total = val[0];
    // A node's weight is its largest share of any metric. It never exceeds
    // its parent's, and parents come first, so ranking by (weight, age)
    // and keeping a prefix keeps whole paths from the root.
    let weight: Vec<f64> = val
        .iter()
        .map(|v| (0..3).map(|m| v[m] as f64 / total[m].max(1) as f64).fold(0.0, f64::max))
        .collect();
    let mut in_budget = vec![true; frame.len()];
    if frame.len() > max_nodes {
        let mut order: Vec<usize> = (0..frame.len()).collect();
        order.select_nth_unstable_by(max_nodes, |&a, &b| weight[b].total_cmp(&weight[a]).then(a.cmp(&b)));
        for &i in &order[max_nodes..] {
            in_budget[i] = false;
        }
    }
    let kept = |i: usize| in_budget[i] && weight[i] * PRUNE_DIVISOR as f64 >= 1.0;
    // Nodes were created after their parents, so one forward pass prunes
    // whole subtrees; children lists come out in creation order.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); frame.len()];
    let mut alive = vec![false; frame.len()];
    alive[0] = true;
    for i in 1..frame.len() {
        alive[i] = alive[parent[i]] && kept(i);
        if alive[i] {
            children[parent[i]].push(i);
        }
    }
    let mut new_index = vec![-1i64; frame.len()];
    let (mut f, mut p, mut b, mut n, mut l) = (vec![], vec![], vec![], vec![], vec![]);
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        new_index[i] = f.len() as i64;
        f.push(frame[i]);
        p.push(if i == 0 { -1 } else { new_index[parent[i]] });
        b.push(val[i][0]);
        n.push(val[i][1]);
        l.push(val[i][2]);
        todo.extend(children[i].iter().rev());
    }
    let pruned = alive.iter().filter(|a| !**a).count();
    Tree {
        json: json!({ "f": f, "p": p, "b": b, "n": n, "l": l, "pruned": pruned }),
        leaf_of_site: leaf.into_iter().map(|i| new_index[i]).collect(),
    }
}

fn add(to: &mut [u64; 3], v: [u64; 3]) {
    for m in 0..3 {
        to[m] = to[m].saturating_add(v[m]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memscope_format::LifetimeStats;

    fn site(id: u64, allocations: u64, bytes: u64, live: u64) -> Callsite {
        Callsite {
            id,
            frames: vec![],
            allocations,
            bytes,
            live_at_exit_bytes: live,
            peak_live_bytes: bytes,
            lifetime_ns: LifetimeStats::default(),
            live_at_exit_allocations: 0,
            reallocs: 0,
            at_peak_bytes: 0,
            at_peak_allocations: 0,
            peak_live_allocations: None,
        }
    }

    #[test]
    fn stacks_merge_from_the_outermost_frame() {
        // Frames innermost first: 0 = malloc wrapper, 1 = leaf fn, 2 = main.
        let sites = [site(0, 1, 10, 0), site(1, 2, 20, 5), site(2, 4, 40, 0)];
        let stacks = [vec![1, 2], vec![0, 2], vec![]];
        let t = build(&sites, &stacks);
        let j = &t.json;
        assert_eq!(j["f"], json!([ROOT, 2, 1, 0, NO_STACK]));
        assert_eq!(j["p"], json!([-1, 0, 1, 1, 0]));
        assert_eq!(j["b"], json!([70, 30, 10, 20, 40]));
        assert_eq!(j["n"], json!([7, 3, 1, 2, 4]));
        assert_eq!(j["l"], json!([5, 5, 0, 5, 0]));
        assert_eq!(t.leaf_of_site, vec![2, 3, 4]);
    }

    #[test]
    fn the_node_budget_keeps_the_heaviest_paths() {
        let sites: Vec<Callsite> = (0..100).map(|i| site(i, 1, 1 + i * 10, 0)).collect(); // equal counts: ties
        let stacks: Vec<Vec<usize>> = (0..100).map(|i| vec![1000 + i as usize, 0]).collect();
        let t = build_within(&sites, &stacks, 12);
        let n = t.json["f"].as_array().unwrap().len();
        assert!(n <= 12, "{n} nodes");
        // Root, the shared outer frame, and the heaviest leaves.
        assert_eq!(t.json["f"][1], 0);
        let kept: Vec<usize> = (0..100).filter(|&i| t.leaf_of_site[i] >= 0).collect();
        assert!(
            !kept.is_empty() && kept.iter().all(|&i| i >= 100 - kept.len()),
            "{kept:?}"
        );
    }

    #[test]
    fn invisible_subtrees_are_pruned() {
        let sites = [site(0, 1_000_000, 1 << 40, 0), site(1, 1, 1, 0)];
        let t = build(&sites, &[vec![0], vec![1, 2]]);
        assert_eq!(t.json["f"], json!([ROOT, 0]));
        assert_eq!(t.json["pruned"], 2);
        assert_eq!(t.leaf_of_site, vec![1, -1]);
        assert_eq!(t.json["b"][0], (1u64 << 40) + 1, "the root keeps the pruned weight");
    }
}
