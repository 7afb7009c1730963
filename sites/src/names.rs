//! A site's one-line name: the first named frame past the wrappers
//! ([`Wrappers::caller_index`]), and, where another site of the same list
//! would read the same, its callers outward until the two differ.

use crate::Wrappers;
use memscope_format::{Callsite, Frame, Snapshot};
use std::collections::HashMap;

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
    fn new(s: &Snapshot) -> FrameMemo {
        FrameMemo {
            wrapper: (0..s.frames.len()).map(|_| Default::default()).collect(),
            label: (0..s.frames.len()).map(|_| Default::default()).collect(),
        }
    }
}

fn naming_in(s: &Snapshot, site: &Callsite, w: &Wrappers, memo: &FrameMemo) -> Naming {
    // Frame-table indices beside the frames (an index past the table has
    // no frame, as in `frames_of`).
    let (index, frames): (Vec<usize>, Vec<(&Frame, Option<&str>)>) = site
        .frames
        .iter()
        .filter_map(|&i| s.frames.get(i as usize).map(|f| (i as usize, (f, s.module_of(f)))))
        .unzip();
    let keys: Vec<(Option<&str>, Option<&str>)> = frames.iter().map(|(f, m)| (f.function.as_deref(), *m)).collect();
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
    let caller = w.caller_index_by(&keys, &is_wrapper);
    let label = |k: usize, f: &Frame, m: Option<&str>| match memo.label.get(index[k]) {
        Some(once) => once.get_or_init(|| frame_label(f, m)).clone(),
        None => frame_label(f, m),
    };
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
    let mut parts: Vec<String> = rest
        .get(first)
        .map(|(f, m)| label(start + first, f, *m))
        .into_iter()
        .collect();
    parts.extend(
        rest.iter()
            .enumerate()
            .skip(first + 1)
            .find(|(_, (f, _))| f.function.is_some())
            .map(|(k, (f, m))| label(start + k, f, *m)),
    );
    let named = if rest.is_empty() { caller } else { from + first };
    Naming { caller, named, parts }
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
    let namings: Vec<Naming> = s.callsites.iter().map(|c| naming_in(s, c, w, &memo)).collect();
    let parts: Vec<Vec<String>> = namings
        .iter()
        .map(|n| {
            if n.parts.is_empty() {
                vec![no_stack_label(s).to_string()]
            } else {
                n.parts.clone()
            }
        })
        .collect();
    let tags: Vec<String> = s.callsites.iter().map(|c| format!("site {}", c.id)).collect();
    let names = unique_names(&parts, &tags);
    namings.into_iter().map(|n| n.caller).zip(names).collect()
}
