//! A site's one-line name: the first named frame past the wrappers
//! ([`Wrappers::caller_index`]), and, where another site of the same list
//! would read the same, its callers outward until the two differ.

use crate::Wrappers;
use memscope_format::{Callsite, Frame, Snapshot};
use std::collections::{HashMap, HashSet};

/// `function (file.c:12)`, `function (in libfoo.so)`, `0x401234 (in
/// libfoo.so)` or `0x401234` (`module`: the frame's module path).
/// Untrusted: escape before printing.
pub fn frame_label(f: &Frame, module: Option<&str>) -> String {
    let file = f
        .file
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| p.rsplit('/').next().unwrap_or(p));
    match (&f.function, file, f.line.filter(|&l| l != 0)) {
        (Some(func), Some(file), Some(line)) => format!("{func} ({file}:{line})"),
        (Some(func), Some(file), None) => format!("{func} ({file})"),
        (Some(func), None, _) => match module_name(module) {
            Some(m) => format!("{func} (in {m})"),
            None => func.clone(),
        },
        (None, _, _) => match module_name(module) {
            Some(m) => format!("{} (in {m})", f.ip),
            None => f.ip.clone(),
        },
    }
}

/// A module path's base name (None: outside every module, or no path).
pub fn module_name(module: Option<&str>) -> Option<&str> {
    module
        .filter(|m| !m.is_empty())
        .map(|m| m.rsplit('/').next().unwrap_or(m))
}

fn label_at(s: &Snapshot, i: usize) -> String {
    let f = &s.frames[i];
    frame_label(f, s.module_of(f))
}

/// What a site is called, before it is made unique among others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// Index (innermost first) of the first frame that is not a wrapper:
    /// the frames before it are shown dimmed.
    pub caller: usize,
    /// Index of the frame whose name the site bears: `caller`, or past it
    /// when that frame is unnamed (a static function of a stripped
    /// library) and a named caller follows.
    pub named: usize,
    /// The labels of the naming frame and of its next named caller (the
    /// first alone names the site; the second tells equal names apart).
    /// Empty for a site without frames.
    pub parts: Vec<String>,
}

/// The naming of one site of `s`.
pub fn naming(s: &Snapshot, site: &Callsite, w: &Wrappers) -> Naming {
    // One site: nothing to share, nothing kept.
    naming_in(s, site, w, &FrameMemo::default())
}

/// What [`naming`] finds about each frame of a snapshot (is it a wrapper,
/// its label), found once: the sites of a program share most of their
/// frames (an allocation wrapper, `xmalloc`), and matching each against
/// every wrapper pattern again was most of naming cc1's 10,000 sites.
/// Indexed like `Snapshot::frames`; empty, it keeps nothing.
#[derive(Default)]
struct FrameMemo {
    wrapper: Vec<std::cell::Cell<Option<bool>>>,
    label: Vec<std::cell::OnceCell<String>>,
}

impl FrameMemo {
    /// The label of frame-table entry `i` (which exists), found once.
    fn label_of(&self, s: &Snapshot, i: usize) -> String {
        self.label_ref(s, i).map_or_else(|| label_at(s, i), str::to_string)
    }

    /// The kept label of frame-table entry `i` (None when nothing is kept).
    fn label_ref(&self, s: &Snapshot, i: usize) -> Option<&str> {
        self.label
            .get(i)
            .map(|once| once.get_or_init(|| label_at(s, i)).as_str())
    }

    fn new(s: &Snapshot) -> FrameMemo {
        FrameMemo {
            wrapper: (0..s.frames.len()).map(|_| Default::default()).collect(),
            label: (0..s.frames.len()).map(|_| Default::default()).collect(),
        }
    }
}

/// Where a site's name comes from, as frame-table indices (see [`Naming`]).
struct Located {
    caller: usize,
    named: usize,
    /// The frame-table indices of the naming frame and of its next named
    /// caller.
    parts: [Option<usize>; 2],
}

/// Per-site scratch vectors, kept across the sites of a snapshot (10,000
/// sites of 30 frames each allocated three vectors of their own).
#[derive(Default)]
struct Scratch<'a> {
    index: Vec<usize>,
    frames: Vec<(&'a Frame, Option<&'a str>)>,
    keys: Vec<(Option<&'a str>, Option<&'a str>)>,
}

fn naming_in(s: &Snapshot, site: &Callsite, w: &Wrappers, memo: &FrameMemo) -> Naming {
    let at = locate(s, site, w, memo, &mut Scratch::default());
    let parts = at.parts.iter().flatten().map(|&i| memo.label_of(s, i)).collect();
    Naming {
        caller: at.caller,
        named: at.named,
        parts,
    }
}

fn locate<'a>(s: &'a Snapshot, site: &Callsite, w: &Wrappers, memo: &FrameMemo, b: &mut Scratch<'a>) -> Located {
    // Frame-table indices beside the frames (an index past the table has
    // no frame, as in `frames_of`).
    b.index.clear();
    b.frames.clear();
    b.keys.clear();
    for &i in &site.frames {
        if let Some(f) = s.frames.get(i as usize) {
            let m = s.module_of(f);
            b.index.push(i as usize);
            b.frames.push((f, m));
            b.keys.push((f.function.as_deref(), m));
        }
    }
    let (index, frames, keys) = (&b.index, &b.frames, &b.keys);
    let is_wrapper = |k: usize| {
        let known = memo.wrapper.get(index[k]);
        known.and_then(|c| c.get()).unwrap_or_else(|| {
            let is = w.is_wrapper(keys[k].0, keys[k].1);
            if let Some(c) = known {
                c.set(Some(is));
            }
            is
        })
    };
    let caller = w.caller_index_by(keys, &is_wrapper);
    // Every frame a wrapper: the outermost one says the most.
    let from = caller.min(frames.len().saturating_sub(1));
    let start = from.min(frames.len());
    let rest = &frames[start..];
    // An unnamed caller (a static function of a stripped library) is named
    // by its first named caller; the address changes with every run.
    let first = rest
        .iter()
        .enumerate()
        .position(|(k, (f, _))| f.function.is_some() && !is_wrapper(start + k))
        .unwrap_or(0);
    let naming_frame = rest.get(first).map(|_| index[start + first]);
    let next_named = rest
        .iter()
        .enumerate()
        .skip(first + 1)
        .find(|(_, (f, _))| f.function.is_some())
        .map(|(k, _)| index[start + k]);
    let named = if rest.is_empty() { caller } else { from + first };
    Located {
        caller,
        named,
        parts: [naming_frame, naming_frame.and(next_named)],
    }
}

/// One name per entry, no two equal: each is its first part (the caller,
/// with its file:line when known); where others share that, it adds the
/// next part (`caller ← its caller`) if that is its alone, else `[tag]`
/// (e.g. `site 12`, which finds the full stack).
pub fn unique_names(parts: &[Vec<String>], tags: &[String]) -> Vec<String> {
    let short = |i: usize, n: usize| parts[i][..n.min(parts[i].len())].join(" ← ");
    // Borrowed keys: a site list of 10,000 cloned every name twice.
    fn tally(names: &[String]) -> HashMap<&str, usize> {
        let mut count: HashMap<&str, usize> = HashMap::with_capacity(names.len());
        for n in names {
            *count.entry(n.as_str()).or_default() += 1;
        }
        count
    }
    let tagged = |n: &str, tag: &str| {
        if n.is_empty() {
            format!("[{tag}]")
        } else {
            format!("{n} [{tag}]")
        }
    };
    let ones: Vec<String> = (0..parts.len()).map(|i| short(i, 1)).collect();
    let twos: Vec<String> = (0..parts.len()).map(|i| short(i, 2)).collect();
    let (count1, count2) = (tally(&ones), tally(&twos));
    let names: Vec<String> = (0..parts.len())
        .map(|i| match (count1[ones[i].as_str()], count2[twos[i].as_str()]) {
            (1, _) => ones[i].clone(),
            (_, 1) => twos[i].clone(),
            _ => tagged(&ones[i], &tags[i]),
        })
        .collect();
    // A short form equal to another's long one (names holding " ← ").
    let repeated: Vec<bool> = {
        let count = tally(&names);
        names.iter().map(|n| count[n.as_str()] > 1).collect()
    };
    names
        .into_iter()
        .zip(tags)
        .zip(repeated)
        .map(|((n, tag), again)| if again { tagged(&n, tag) } else { n })
        .collect()
}

/// What a list shows for a site without frames.
pub fn no_stack_label(s: &Snapshot) -> &'static str {
    // With backtraces on, site 0 holds what had no stack of its own (an
    // allocation before memscope's start-up, a stack it could not walk,
    // sites past the table's capacity).
    if s.tool.backtrace_depth > 0 {
        "(no stack recorded for these)"
    } else {
        "(no backtrace: run with --backtrace N to see sites)"
    }
}

/// The names of every site of `s`, in the order of `s.callsites`, no two
/// equal, with each site's [`Naming::caller`].
pub fn site_names(s: &Snapshot, w: &Wrappers) -> Vec<(usize, String)> {
    let memo = FrameMemo::new(s);
    let found = locate_all(s, w, &memo);
    let names = names_by_label(s, &found, &memo).unwrap_or_else(|| names_by_text(s, &found, &memo));
    found.iter().map(|at| at.caller).zip(names).collect()
}

/// Where each site of `s` takes its name from, in order.
fn locate_all(s: &Snapshot, w: &Wrappers, memo: &FrameMemo) -> Vec<Located> {
    let mut scratch = Scratch::default();
    s.callsites
        .iter()
        .map(|c| locate(s, c, w, memo, &mut scratch))
        .collect()
}

/// The sites' names by [`unique_names`] itself (the general way).
fn names_by_text(s: &Snapshot, found: &[Located], memo: &FrameMemo) -> Vec<String> {
    let parts: Vec<Vec<String>> = found
        .iter()
        .map(|at| match at.parts {
            [None, _] => vec![no_stack_label(s).to_string()],
            p => p.iter().flatten().map(|&i| memo.label_of(s, i)).collect(),
        })
        .collect();
    let tags: Vec<String> = s.callsites.iter().map(|c| format!("site {}", c.id)).collect();
    unique_names(&parts, &tags)
}

/// Both ways of naming `s`'s sites, for the tests: (by label, by text).
#[cfg(test)]
pub(crate) fn both_ways(s: &Snapshot, w: &Wrappers) -> (Option<Vec<String>>, Vec<String>) {
    let memo = FrameMemo::new(s);
    let found = locate_all(s, w, &memo);
    (names_by_label(s, &found, &memo), names_by_text(s, &found, &memo))
}

/// [`unique_names`] of the sites `found`, told apart by label numbers
/// instead of joined strings: cc1's 10,000 sites built, hashed and
/// compared 40,000 strings, and only the names are needed. Exact whenever
/// no label holds `" ← "` or `[` and no two sites share an id: then no
/// short name can equal another's longer or tagged one (the only case
/// [`unique_names`]' second pass changes). None otherwise (the caller then
/// takes the general way).
fn names_by_label(s: &Snapshot, found: &[Located], memo: &FrameMemo) -> Option<Vec<String>> {
    const NO_STACK: u32 = u32::MAX;
    const NONE: u32 = u32::MAX - 1;
    let mut ids = HashSet::with_capacity(s.callsites.len());
    if !s.callsites.iter().all(|c| ids.insert(c.id)) {
        return None;
    }
    let mut number: HashMap<&str, u32> = HashMap::new();
    let mut labels: Vec<&str> = Vec::new();
    let mut label_number = |i: usize| -> Option<u32> {
        let l = memo.label_ref(s, i)?;
        Some(*number.entry(l).or_insert_with(|| {
            labels.push(l);
            labels.len() as u32 - 1
        }))
    };
    let mut keys: Vec<(u32, u32)> = Vec::with_capacity(found.len());
    for at in found {
        keys.push(match at.parts {
            [None, _] => (NO_STACK, NONE),
            [Some(a), b] => (label_number(a)?, b.map_or(Some(NONE), &mut label_number)?),
        });
    }
    if labels.iter().any(|l| l.contains(" ← ") || l.contains('[')) {
        return None;
    }
    let text = |n: u32| {
        if n == NO_STACK {
            no_stack_label(s)
        } else {
            labels[n as usize]
        }
    };
    let mut ones: HashMap<u32, u32> = HashMap::with_capacity(keys.len());
    let mut twos: HashMap<(u32, u32), u32> = HashMap::with_capacity(keys.len());
    for &(a, b) in &keys {
        *ones.entry(a).or_default() += 1;
        *twos.entry((a, b)).or_default() += 1;
    }
    let names = keys
        .iter()
        .zip(&s.callsites)
        .map(|(&(a, b), c)| match (ones[&a], twos[&(a, b)]) {
            (1, _) => text(a).to_string(),
            (_, 1) if b != NONE => format!("{} ← {}", text(a), text(b)),
            (_, 1) => text(a).to_string(),
            _ if text(a).is_empty() => format!("[site {}]", c.id),
            _ => format!("{} [site {}]", text(a), c.id),
        })
        .collect();
    Some(names)
}
