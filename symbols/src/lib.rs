//! Code addresses → function, file and line.
//!
//! addr2line reads a module's DWARF (inlined frames included), for a file
//! that has any; otherwise, or where DWARF names no function, the module's
//! ELF symbol table does (`symtab`: one pass over it per batch of
//! addresses, [`Resolver::prefetch`]); names are demangled (Rust legacy and
//! v0, C++). A stripped library's static functions are named from its
//! separate debug file's symbol table (by build id). Naming costs in
//! proportion to the addresses named: a short process names a few dozen.
//!
//! Two users: `libmemscope.so` names its frames when it writes a snapshot by
//! itself, and `memscope-cli run` names every snapshot of a run afterwards
//! ([`name_pending`]) with one [`Resolver`] for the whole run, so each
//! module is read once per run rather than once per process image.

mod cache;
mod dwarf;
mod files;
mod pending;
mod symtab;

pub use cache::NameCache;
pub use files::file_build_id;
pub use pending::name_pending;

use files::{debug_symbols, ModuleFile};
use memscope_format::addr_map::AddrMap;

/// A loaded module as the process saw it.
#[derive(Debug, Clone, Copy)]
pub struct ModuleRef<'a> {
    /// The file's path.
    pub path: &'a str,
    /// Load bias: runtime address = file address + bias.
    pub bias: u64,
    /// The GNU build id of the loaded object (empty if it had none): a file
    /// at `path` with another build id is not the one that was loaded, and
    /// is not used to name its addresses.
    pub build_id: &'a [u8],
}

/// One frame's names; `function`, `file` and `line` are None when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Inlined into the next (outer) frame of the same address.
    pub inlined: bool,
}

/// Names addresses, caching each module file and each address (and,
/// with a [`NameCache`], what it found for the next process or run).
#[derive(Default)]
pub struct Resolver {
    /// Every module asked about, by path and build id.
    modules: Vec<ModuleNames>,
    /// The one asked about last: the next address is most often its too.
    last: usize,
    cache: Option<NameCache>,
}

/// One module's file (opened when an address is not named yet; None when
/// it cannot be read or is not the object that was loaded) and the names
/// found so far, by file-relative address.
struct ModuleNames {
    path: String,
    build_id: Vec<u8>,
    file: Option<Option<ModuleFile>>,
    names: AddrMap<Vec<Named>>,
    /// Addresses named here, not read from the cache.
    found: Vec<u64>,
}

impl ModuleNames {
    /// Names `rels` (not named yet) from the module's file.
    fn name(&mut self, rels: &[u64]) -> Vec<Vec<Named>> {
        self.found.extend_from_slice(rels);
        let (path, build_id) = (&self.path, &self.build_id);
        match self.file.get_or_insert_with(|| ModuleFile::open(path, build_id)) {
            Some(f) => f.names(rels, build_id),
            None => vec![vec![Named::default()]; rels.len()],
        }
    }
}

impl Resolver {
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// A resolver that starts from the names `cache` kept, and adds what
    /// it finds there on [`save`](Self::save).
    pub fn with_cache(cache: Option<NameCache>) -> Resolver {
        Resolver {
            cache,
            ..Resolver::default()
        }
    }

    /// Adds the names found since the last save to the cache (if any).
    pub fn save(&mut self) {
        let Some(cache) = &self.cache else { return };
        for m in &mut self.modules {
            if m.build_id.is_empty() || m.found.is_empty() {
                continue;
            }
            let found: AddrMap<Vec<Named>> = m
                .found
                .drain(..)
                .filter_map(|rel| Some((rel, m.names.get(&rel)?.clone())))
                .collect();
            cache.add(&m.build_id, &found, matches!(m.file, Some(Some(_))));
        }
    }

    /// The frames of return address `ip` in module `m`, innermost (inlined)
    /// first; always at least one (unnamed when nothing is known).
    pub fn resolve(&mut self, m: &ModuleRef, ip: u64) -> Vec<Named> {
        self.resolved(m, ip).to_vec()
    }

    /// As [`Resolver::resolve`], borrowed from the resolver's own table:
    /// a caller that copies only some of it (a run names a thousand
    /// snapshots' frames) need not copy the list first.
    pub fn resolved(&mut self, m: &ModuleRef, ip: u64) -> &[Named] {
        // A return address points after its call: look up the call itself.
        let rel = ip.wrapping_sub(m.bias).wrapping_sub(1);
        let module = self.module(m);
        if !module.names.contains_key(&rel) {
            let named = module.name(&[rel]).pop().unwrap_or_default();
            module.names.insert(rel, named);
        }
        &module.names[&rel]
    }

    /// Names the return addresses `ips` of module `m` together, for
    /// [`Resolver::resolve`] to return: the module's symbol tables are read
    /// once for all of them rather than once per address.
    pub fn prefetch(&mut self, m: &ModuleRef, ips: &[u64]) {
        let module = self.module(m);
        let mut rels: Vec<u64> = ips
            .iter()
            .map(|ip| ip.wrapping_sub(m.bias).wrapping_sub(1))
            .filter(|rel| !module.names.contains_key(rel))
            .collect();
        rels.sort_unstable();
        rels.dedup();
        if rels.is_empty() {
            return;
        }
        let named = module.name(&rels);
        for (rel, mut n) in rels.into_iter().zip(named) {
            if n.is_empty() {
                n.push(Named::default());
            }
            module.names.insert(rel, n);
        }
    }

    /// The cache of module `m` (its file opened on first use). Looked up
    /// without building a key: a big snapshot asks once per frame, and a
    /// hashed path and build id per frame cost more than the naming.
    fn module(&mut self, m: &ModuleRef) -> &mut ModuleNames {
        let same = |c: &ModuleNames| c.path == m.path && c.build_id == m.build_id;
        if !self.modules.get(self.last).is_some_and(same) {
            self.last = match self.modules.iter().position(same) {
                Some(i) => i,
                None => {
                    let names = match &self.cache {
                        Some(c) if !m.build_id.is_empty() => c.load(m.build_id),
                        _ => AddrMap::default(),
                    };
                    self.modules.push(ModuleNames {
                        path: m.path.to_owned(),
                        build_id: m.build_id.to_vec(),
                        file: None,
                        names,
                        found: Vec::new(),
                    });
                    self.modules.len() - 1
                }
            };
        }
        &mut self.modules[self.last]
    }
}

impl ModuleFile {
    /// The frames of each of `rels` (file addresses, ascending, distinct).
    fn names(&mut self, rels: &[u64], build_id: &[u8]) -> Vec<Vec<Named>> {
        let mut named: Vec<Vec<Named>> = rels.iter().map(|&rel| self.dwarf_frames(rel)).collect();
        // No DWARF (or none naming the function): the symbol table, read
        // once for all of them.
        let unnamed: Vec<usize> = (0..rels.len())
            .filter(|&i| named[i].iter().all(|f| f.function.is_none()))
            .collect();
        let mut functions = self.symbol_names(&unnamed.iter().map(|&i| rels[i]).collect::<Vec<_>>(), build_id);
        for (&i, function) in unnamed.iter().zip(functions.drain(..)) {
            match named[i].last_mut() {
                Some(f) => f.function = function,
                None => named[i].push(Named {
                    function,
                    ..Named::default()
                }),
            }
        }
        named
    }

    /// An address's frames from DWARF, innermost (inlined) first; empty
    /// when it has none.
    fn dwarf_frames(&self, rel: u64) -> Vec<Named> {
        self.dwarf.as_ref().map(|d| d.frames(rel)).unwrap_or_default()
    }

    /// The demangled names of the symbols containing `rels` (ascending):
    /// the file's own table, else the separate debug file's.
    fn symbol_names(&mut self, rels: &[u64], build_id: &[u8]) -> Vec<Option<String>> {
        let mut found: Vec<Option<String>> = match &self.symbols {
            Some(table) => table
                .find_sorted(rels)
                .into_iter()
                .map(|n| n.map(str::to_owned))
                .collect(),
            None => vec![None; rels.len()],
        };
        let missing: Vec<usize> = (0..rels.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            // A static function of a stripped library: the separate debug
            // file's full symbol table names it (its DWARF is not parsed:
            // for libc that alone costs ~100 ms).
            let debug = self.debug_symbols.get_or_insert_with(|| debug_symbols(build_id));
            if let Some(table) = debug {
                let probes: Vec<u64> = missing.iter().map(|&i| rels[i]).collect();
                for (&i, name) in missing.iter().zip(table.find_sorted(&probes)) {
                    found[i] = name.map(str::to_owned);
                }
            }
        }
        // Each symbol demangled once: a module's addresses are mostly
        // several per function (cc1: 5,656 in 1,321), and demangling a C++
        // name costs more than finding it.
        found
            .into_iter()
            .map(|name| {
                let name = name?;
                if let Some(d) = self.demangled.get(&name) {
                    return Some(d.clone());
                }
                let d = addr2line::demangle_auto(std::borrow::Cow::Borrowed(name.as_str()), None).into_owned();
                self.demangled.insert(name, d.clone());
                Some(d)
            })
            .collect()
    }
}

/// Lower-case hex of a build id, as snapshots store it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex build id (None if it is not hex).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0x0a, 0xff, 0x00]), "0aff00");
        assert_eq!(unhex("0aff00"), Some(vec![0x0a, 0xff, 0x00]));
        assert_eq!(unhex(""), Some(vec![]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }

    /// This test binary's path and load bias.
    pub(crate) fn this_binary() -> (String, u64) {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe = exe.to_str().unwrap().to_owned();
        // The lowest mapping of the executable is its file offset 0.
        let base = maps
            .lines()
            .filter(|l| l.ends_with(exe.as_str()))
            .filter_map(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
            .min()
            .unwrap();
        (exe, base)
    }

    /// Names `functions` (return addresses just past their entry) of
    /// module `m` together, given in order, reversed, repeated and twice,
    /// and checks each against its names asked alone.
    fn assert_prefetch_names_as_alone(m: &ModuleRef, functions: &[u64]) {
        let mut ips: Vec<u64> = functions.iter().map(|a| a + 1).collect();
        ips.extend(functions.iter().rev().map(|a| a + 1));
        ips.push(ips[0]);
        let mut together = Resolver::new();
        together.prefetch(m, &ips);
        together.prefetch(m, &ips);
        for &ip in &ips {
            let alone = Resolver::new().resolve(m, ip);
            assert!(alone.iter().any(|f| f.function.is_some()), "{alone:?}");
            assert_eq!(together.resolve(m, ip), alone);
        }
    }

    /// Addresses named together (`prefetch`) get the names each gets
    /// alone: functions of this binary (DWARF) and of libc (symbol tables).
    #[test]
    fn prefetched_names_are_the_names_asked_one_by_one() {
        let (exe, base) = this_binary();
        let own = ModuleRef {
            path: &exe,
            bias: base,
            build_id: &[],
        };
        let functions = [
            names_a_function_of_this_binary as *const (),
            hex_round_trips as *const (),
            this_binary as *const (),
        ];
        assert_prefetch_names_as_alone(&own, &functions.map(|f| f as u64));
        extern "C" {
            fn malloc(size: usize) -> *mut u8;
            fn getpid() -> i32;
            fn abs(n: i32) -> i32;
        }
        // libc, by the loader's word: the first mapping of libc.so in the
        // maps can be another test's mapping of the file (symtab's tests map
        // it while this one runs), a few pages below the loaded one.
        // SAFETY: dladdr fills `info` for an address of a loaded object; the
        // name it points to stays valid while libc is loaded.
        let (path, base) = unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            assert_ne!(libc::dladdr(malloc as *const libc::c_void, &mut info), 0);
            let path = std::ffi::CStr::from_ptr(info.dli_fname).to_str().unwrap().to_owned();
            (path, info.dli_fbase as u64)
        };
        let libc = ModuleRef {
            path: &path,
            bias: base,
            build_id: &[],
        };
        let functions = [malloc as *const (), getpid as *const (), abs as *const ()];
        assert_prefetch_names_as_alone(&libc, &functions.map(|f| f as u64));
    }

    /// This test binary's own functions are named, through its DWARF.
    #[test]
    fn names_a_function_of_this_binary() {
        let (exe, base) = this_binary();
        let m = ModuleRef {
            path: &exe,
            bias: base,
            build_id: &[],
        };
        let ip = names_a_function_of_this_binary as *const () as u64 + 1;
        let mut r = Resolver::new();
        let named = r.resolve(&m, ip);
        let f = named.last().unwrap();
        assert!(
            f.function
                .as_deref()
                .is_some_and(|n| n.ends_with("names_a_function_of_this_binary")),
            "{named:?}"
        );
        assert!(f.file.as_deref().is_some_and(|p| p.ends_with("lib.rs")), "{named:?}");
        // Another build id: not the file that was loaded, so no names.
        let other = ModuleRef {
            build_id: &[1, 2, 3],
            ..m
        };
        assert_eq!(r.resolve(&other, ip), vec![Named::default()]);
    }
}
