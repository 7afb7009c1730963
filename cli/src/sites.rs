//! Allocation sites as people and other builds see them: by their
//! symbolized frames (function, file, line), never by addresses, which
//! change with every build and every run (ASLR).

use memscope_format::{Callsite, Frame};

/// Frames that belong to the allocator rather than to the program: a site
/// is named after the first frame outside them.
fn is_allocator_frame(f: &Frame) -> bool {
    if f.module.as_deref().is_some_and(|m| m.ends_with("/libmemscope.so")) {
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

/// `function (file.c:12)`, `0x401234 (in libfoo.so)` or `0x401234`. Untrusted:
/// escape before printing.
pub fn frame_label(f: &Frame) -> String {
    let file = f
        .file
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| p.rsplit('/').next().unwrap_or(p));
    match (&f.function, file, f.line.filter(|&l| l != 0)) {
        (Some(func), Some(file), Some(line)) => format!("{func} ({file}:{line})"),
        (Some(func), Some(file), None) => format!("{func} ({file})"),
        (Some(func), None, _) => match module_name(f) {
            Some(m) => format!("{func} (in {m})"),
            None => func.clone(),
        },
        (None, _, _) => match module_name(f) {
            Some(m) => format!("{} (in {m})", f.ip),
            None => f.ip.clone(),
        },
    }
}

fn module_name(f: &Frame) -> Option<&str> {
    f.module.as_deref().map(|m| m.rsplit('/').next().unwrap_or(m))
}

/// The program's frames of a site, allocator frames dropped (all of them
/// kept if nothing else is left).
pub fn program_frames(site: &Callsite) -> &[Frame] {
    let skip = site.frames.iter().take_while(|f| is_allocator_frame(f)).count();
    if skip < site.frames.len() {
        &site.frames[skip..]
    } else {
        &site.frames
    }
}

/// A one-line name for a site: its first program frame and that frame's
/// caller. Untrusted: escape before printing.
pub fn site_label(site: &Callsite) -> String {
    let frames = program_frames(site);
    match frames {
        [] => "(no backtrace: run with --backtrace N to see sites)".to_string(),
        [only] => frame_label(only),
        [first, second, ..] => format!("{} ← {}", frame_label(first), frame_label(second)),
    }
}

/// What identifies a frame across builds: its symbol and source position.
/// An unsymbolized frame falls back to its object file, then its address.
pub fn frame_key(f: &Frame) -> String {
    match &f.function {
        Some(func) => format!(
            "{func}\u{1f}{}\u{1f}{}",
            f.file.as_deref().unwrap_or(""),
            f.line.map(|l| l.to_string()).unwrap_or_default()
        ),
        None => match module_name(f) {
            Some(m) => format!("?\u{1f}{m}"),
            None => format!("?\u{1f}{}", f.ip),
        },
    }
}

/// What identifies a site across builds: the keys of its frames.
pub fn site_key(site: &Callsite) -> Vec<String> {
    site.frames.iter().map(frame_key).collect()
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
            module: Some("/usr/bin/prog".into()),
            inlined: false,
        }
    }

    pub fn site(id: u64, frames: Vec<Frame>, allocations: u64, bytes: u64) -> Callsite {
        Callsite {
            id,
            frames,
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
        let s = site(
            1,
            vec![
                frame(1, Some("malloc"), None, None),
                frame(2, Some("make_table"), Some("/src/db/table.c"), Some(42)),
                frame(3, Some("main"), Some("/src/main.c"), Some(7)),
            ],
            1,
            8,
        );
        assert_eq!(site_label(&s), "make_table (table.c:42) ← main (main.c:7)");
        let unknown = site(2, vec![frame(0x1234, None, None, None)], 1, 1);
        assert_eq!(site_label(&unknown), "0x1234 (in prog)");
        assert!(site_label(&site(0, vec![], 1, 1)).contains("no backtrace"));
    }

    #[test]
    fn keys_ignore_addresses() {
        let a = site(1, vec![frame(0x1000, Some("f"), Some("a.c"), Some(3))], 1, 1);
        let b = site(9, vec![frame(0x9000, Some("f"), Some("a.c"), Some(3))], 1, 1);
        let c = site(9, vec![frame(0x1000, Some("f"), Some("a.c"), Some(4))], 1, 1);
        assert_eq!(site_key(&a), site_key(&b));
        assert_ne!(site_key(&a), site_key(&c));
    }
}
