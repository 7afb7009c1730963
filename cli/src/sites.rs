//! Allocation sites as people and other builds see them: by their
//! symbolized frames (function, file, line), never by addresses, which
//! change with every build and every run (ASLR).

use memscope_format::{Callsite, Frame, Snapshot};

/// Frames that belong to the allocator rather than to the program: a site
/// is named after the first frame outside them. `module`: the frame's
/// module path.
fn is_allocator_frame(f: &Frame, module: Option<&str>) -> bool {
    if module.is_some_and(|m| m.ends_with("/libmemscope.so")) {
        return true;
    }
    let Some(name) = f.function.as_deref() else {
        return false;
    };
    const EXACT: [&str; 12] = [
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "free",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
        "__libc_malloc",
        "__libc_calloc",
    ];
    const PREFIXES: [&str; 10] = [
        "operator new",
        "__rust_alloc",
        "__rust_realloc",
        "__rdl_",
        "__rg_",
        "alloc::alloc::",
        "alloc::raw_vec::",
        "<alloc::alloc::Global",
        "std::sys::alloc::",
        "memscope_",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// `function (file.c:12)`, `0x401234 (in libfoo.so)` or `0x401234`
/// (`module`: the frame's module path). Untrusted: escape before printing.
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
fn module_name(module: Option<&str>) -> Option<&str> {
    module
        .filter(|m| !m.is_empty())
        .map(|m| m.rsplit('/').next().unwrap_or(m))
}

/// The program's frames of a site with their module paths, allocator
/// frames dropped (all of them kept if nothing else is left).
pub fn program_frames<'a>(s: &'a Snapshot, site: &'a Callsite) -> Vec<(&'a Frame, Option<&'a str>)> {
    let all: Vec<(&Frame, Option<&str>)> = s.frames_of(site).map(|f| (f, s.module_of(f))).collect();
    let skip = all.iter().take_while(|(f, m)| is_allocator_frame(f, *m)).count();
    if skip < all.len() {
        all[skip..].to_vec()
    } else {
        all
    }
}

/// A one-line name for a site: its first program frame and that frame's
/// caller. Untrusted: escape before printing.
pub fn site_label(s: &Snapshot, site: &Callsite) -> String {
    match program_frames(s, site).as_slice() {
        // With backtraces on, site 0 holds what had no stack of its own (an
        // allocation before memscope's start-up, a stack it could not walk,
        // sites past the table's capacity).
        [] if s.tool.backtrace_depth > 0 => "(no stack recorded for these)".to_string(),
        [] => "(no backtrace: run with --backtrace N to see sites)".to_string(),
        [(f, m)] => frame_label(f, *m),
        [(f1, m1), (f2, m2), ..] => format!("{} ← {}", frame_label(f1, *m1), frame_label(f2, *m2)),
    }
}

/// What identifies a frame across builds: its symbol and source position.
/// An unsymbolized frame falls back to its object file, then its address.
pub fn frame_key(f: &Frame, module: Option<&str>) -> String {
    match &f.function {
        Some(func) => format!(
            "{func}\u{1f}{}\u{1f}{}",
            f.file.as_deref().unwrap_or(""),
            f.line.map(|l| l.to_string()).unwrap_or_default()
        ),
        None => match module_name(module) {
            Some(m) => format!("?\u{1f}{m}"),
            None => format!("?\u{1f}{}", f.ip),
        },
    }
}

/// What identifies a site across builds: the keys of its frames.
pub fn site_key(s: &Snapshot, site: &Callsite) -> Vec<String> {
    s.frames_of(site).map(|f| frame_key(f, s.module_of(f))).collect()
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use memscope_format::LifetimeStats;

    pub fn frame(ip: u64, function: Option<&str>, file: Option<&str>, line: Option<u32>) -> Frame {
        Frame {
            ip: memscope_format::hex_addr(ip),
            function: function.map(String::from),
            file: file.map(String::from),
            line,
            module: 0,
            inlined: false,
        }
    }

    /// A snapshot holding `sites`, each given as its frames (module
    /// `/usr/bin/prog`).
    pub fn with_sites(sites: Vec<(u64, Vec<Frame>, u64, u64)>) -> Snapshot {
        let mut s: Snapshot = memscope_format::read_snapshot(crate::export::tests::MINIMAL.as_bytes()).unwrap();
        let mut t = memscope_format::FrameTables::new();
        t.module("/usr/bin/prog");
        s.callsites = sites
            .into_iter()
            .map(|(id, frames, allocations, bytes)| {
                let mut c = site(id, allocations, bytes);
                c.frames = frames.into_iter().map(|f| t.frame(f)).collect();
                c
            })
            .collect();
        t.install(&mut s);
        s
    }

    pub fn site(id: u64, allocations: u64, bytes: u64) -> Callsite {
        Callsite {
            id,
            frames: Vec::new(),
            allocations,
            bytes,
            live_at_exit_bytes: 0,
            peak_live_bytes: bytes,
            lifetime_ns: LifetimeStats::default(),
            live_at_exit_allocations: 0,
            reallocs: 0,
            at_peak_bytes: 0,
        }
    }

    #[test]
    fn labels_skip_the_allocator() {
        let s = with_sites(vec![
            (
                1,
                vec![
                    frame(1, Some("malloc"), None, None),
                    frame(2, Some("make_table"), Some("/src/db/table.c"), Some(42)),
                    frame(3, Some("main"), Some("/src/main.c"), Some(7)),
                ],
                1,
                8,
            ),
            (2, vec![frame(0x1234, None, None, None)], 1, 1),
            (0, vec![], 1, 1),
        ]);
        let label = |i: usize| site_label(&s, &s.callsites[i]);
        assert_eq!(label(0), "make_table (table.c:42) ← main (main.c:7)");
        assert_eq!(label(1), "0x1234 (in prog)");
        assert!(label(2).contains("no backtrace"));
        let mut on = s.clone();
        on.tool.backtrace_depth = 32;
        assert_eq!(site_label(&on, &on.callsites[2]), "(no stack recorded for these)");
    }

    #[test]
    fn keys_ignore_addresses() {
        let s = with_sites(vec![
            (1, vec![frame(0x1000, Some("f"), Some("a.c"), Some(3))], 1, 1),
            (9, vec![frame(0x9000, Some("f"), Some("a.c"), Some(3))], 1, 1),
            (9, vec![frame(0x1000, Some("f"), Some("a.c"), Some(4))], 1, 1),
        ]);
        let key = |i: usize| site_key(&s, &s.callsites[i]);
        assert_eq!(key(0), key(1));
        assert_ne!(key(0), key(2));
    }
}
