//! Allocation sites as people and other builds see them: by their
//! symbolized frames (function, file, line), never by addresses, which
//! change with every build and every run (ASLR).

use memscope_format::{Callsite, Frame, Snapshot};
pub use memscope_sites::frame_label;
use memscope_sites::names::module_name;
use memscope_sites::Wrappers;
use std::sync::OnceLock;

/// `--wrapper PATTERN`, on every command that names sites.
#[derive(clap::Args, Default)]
pub struct WrapperArgs {
    /// Also treat functions matching PATTERN (a glob over the whole demangled
    /// name: `*`, `?`, `[…]`) as allocation wrappers, so sites are named after
    /// their callers; repeatable, added to the built-in list and to
    /// $MEMSCOPE_WRAPPERS (patterns separated by `;`).
    #[arg(long = "wrapper", value_name = "PATTERN")]
    patterns: Vec<String>,
}

static WRAPPERS: OnceLock<Wrappers> = OnceLock::new();

/// Sets the wrappers this run of the CLI names sites with: the built-in
/// list, $MEMSCOPE_WRAPPERS and `--wrapper`. An invalid pattern is a
/// one-line usage error.
pub fn configure(a: &WrapperArgs) -> Result<(), String> {
    let mut extra = std::env::var(memscope_sites::ENV_VAR)
        .map(|v| Wrappers::split_env(&v))
        .unwrap_or_default();
    extra.extend(a.patterns.iter().cloned());
    let w = Wrappers::with(&extra).map_err(|e| crate::text::term(&e))?;
    let _ = WRAPPERS.set(w);
    Ok(())
}

/// The wrappers set by [`configure`] (the built-in list before it).
pub fn wrappers() -> &'static Wrappers {
    WRAPPERS.get_or_init(Wrappers::builtin)
}

/// The one-line names of every site of `s`, keyed by site id: the
/// caller past the allocation wrappers, made unique within the snapshot.
/// Untrusted: escape before printing.
pub fn site_names(s: &Snapshot) -> std::collections::HashMap<u64, String> {
    let names = memscope_sites::site_names(s, wrappers());
    s.callsites
        .iter()
        .map(|c| c.id)
        .zip(names.into_iter().map(|(_, n)| n))
        .collect()
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
            at_peak_allocations: 0,
            peak_live_allocations: None,
        }
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
