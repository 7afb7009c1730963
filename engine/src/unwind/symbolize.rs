//! Return addresses → the snapshot's `modules` and `frames` tables, when a
//! snapshot is written.
//!
//! Modules are looked up among every module the process ever loaded, so a
//! library `dlclose`d before the end still gets its names. The names come
//! from [`memscope_symbols`]; under `memscope-cli run` they are left to
//! `run` (`MEMSCOPE_SYMBOLIZE=later`), which names every snapshot of the run
//! with one cache, so a shell loop's 200 `ls` images read `ls` and libc once.

use super::modules::{self, Module};
use crate::collector::AddrMap;
use memscope_format::{hex_addr, Frame, FrameTables, ModuleInfo, UNKNOWN_MODULE};
use memscope_symbols::{ModuleRef, Resolver};
/// Names addresses into a snapshot's `modules` and `frames` tables (format
/// version 2): each address is resolved once, each frame stored once.
pub struct Symbolizer {
    /// Every module the process loaded, the current ones first; listed at
    /// the first address (an inherited-only snapshot has none).
    modules: Option<Vec<&'static Module>>,
    /// None: frames are left unnamed for `memscope-cli run` to name.
    resolver: Option<Resolver>,
    /// Each address's frames (its inlined frames first) in `tables`, as a
    /// range of `by_ip_frames`; hashed with one multiply: a big program's
    /// snapshot looks up every frame of every site (cc1: 300,000), and
    /// SipHash made that as costly as walking the stacks had been. One
    /// array instead of a `Vec` per address: each lookup then read a heap
    /// block of its own, scattered (cc1: 5,600), and naming cc1's sites
    /// took ~6 ms.
    by_ip: AddrMap<(u32, u32)>,
    by_ip_frames: Vec<u32>,
    /// The stack [`Symbolizer::stack`] was last asked for, and its
    /// addresses' ranges in `by_ip_frames`; `spare_ranges` is reused.
    last_ips: Vec<u64>,
    last_ranges: Vec<(u32, u32)>,
    spare_ranges: Vec<(u32, u32)>,
    tables: FrameTables,
    /// Bias and build id of each module of `tables`, in its order.
    module_info: Vec<ModuleInfo>,
    /// Each module's index in `tables`, by the module's address.
    module_ids: Vec<(usize, u32)>,
    /// The main program's path (its module's own is empty).
    exe: &'static str,
}

/// This library's name cache ([`super::own_cache`]); none under a seccomp
/// filter (a sandbox may kill for a `mkdir` or `rename` it did not expect).
fn name_cache() -> Option<memscope_symbols::NameCache> {
    if !crate::rss::no_seccomp_filter() {
        return None;
    }
    super::own_cache()
}

impl Symbolizer {
    /// `name_now`: name frames here; otherwise leave them to `run`.
    pub fn new(name_now: bool) -> Symbolizer {
        let mut symbolizer = Symbolizer {
            modules: None,
            resolver: name_now.then(|| Resolver::with_cache(name_cache())),
            by_ip: AddrMap::default(),
            by_ip_frames: Vec::new(),
            last_ips: Vec::new(),
            last_ranges: Vec::new(),
            spare_ranges: Vec::new(),
            tables: FrameTables::new(),
            module_info: Vec::new(),
            module_ids: Vec::new(),
            exe: crate::process::own_exe(),
        };
        symbolizer.prefetch();
        symbolizer
    }

    /// The modules addresses are looked up in.
    fn modules(&mut self) -> &[&'static Module] {
        self.modules.get_or_insert_with(|| {
            let mut mods = modules::all_seen();
            // The currently loaded one wins where a range was reused.
            let current = modules::current().modules.clone();
            mods.retain(|m| !current.iter().any(|c| std::ptr::eq(*c, *m)));
            mods.splice(0..0, current);
            mods
        })
    }

    /// Names every site's addresses module by module, so that each
    /// module's symbol tables are read once (not once per address).
    fn prefetch(&mut self) {
        if self.resolver.is_none() || super::sites::count() == 0 {
            return;
        }
        let modules = self.modules().to_vec();
        let mut by_module: Vec<Vec<u64>> = vec![Vec::new(); modules.len()];
        // Each address once: cc1's 10,000 sites hold 300,000 return
        // addresses but 5,600 distinct ones, and the resolver hashes (and
        // sorts) what it is given.
        let mut seen: AddrMap<()> = AddrMap::default();
        let mut ips = Vec::new();
        for id in 1..=super::sites::count() {
            super::sites::frames_into(id, &mut ips);
            for &ip in &ips {
                if seen.insert(ip, ()).is_some() {
                    continue;
                }
                if let Some(i) = modules.iter().position(|m| m.contains(ip)) {
                    by_module[i].push(ip);
                }
            }
        }
        let Some(resolver) = self.resolver.as_mut() else {
            return;
        };
        for (m, ips) in modules.iter().zip(by_module) {
            if !ips.is_empty() {
                let path = module_path(m, self.exe);
                let module = ModuleRef {
                    path,
                    bias: m.bias,
                    build_id: &m.build_id,
                };
                resolver.prefetch(&module, &ips);
            }
        }
    }

    /// The frames of one stack of return addresses, innermost first, each
    /// address expanded into its inlined frames: indices into the tables.
    ///
    /// The outer frames it shares with the stack asked before it are not
    /// looked up again: a snapshot asks for its sites in the order they
    /// were first used, and neighbours often share outer frames (cc1's
    /// 10,000 sites hold 300,000 addresses, 5,600 distinct: naming its
    /// sites took ~10% less).
    pub fn stack(&mut self, ips: &[u64]) -> Vec<u32> {
        let shared = ips
            .iter()
            .rev()
            .zip(self.last_ips.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let mut ranges = std::mem::take(&mut self.spare_ranges);
        ranges.clear();
        for &ip in &ips[..ips.len() - shared] {
            ranges.push(self.range_of(ip));
        }
        ranges.extend_from_slice(&self.last_ranges[self.last_ranges.len() - shared..]);
        let mut out = Vec::with_capacity(ips.len());
        for &(start, len) in &ranges {
            out.extend_from_slice(&self.by_ip_frames[start as usize..(start + len) as usize]);
        }
        self.spare_ranges = std::mem::replace(&mut self.last_ranges, ranges);
        self.last_ips.clear();
        self.last_ips.extend_from_slice(ips);
        out
    }

    /// Where address `ip`'s frames lie in `by_ip_frames`.
    fn range_of(&mut self, ip: u64) -> (u32, u32) {
        if let Some(&range) = self.by_ip.get(&ip) {
            return range;
        }
        let indices = self.resolve(ip);
        let range = (self.by_ip_frames.len() as u32, indices.len() as u32);
        self.by_ip_frames.extend_from_slice(&indices);
        self.by_ip.insert(ip, range);
        range
    }

    /// The frames so far (for [`strip_own_frames`]).
    pub fn frames(&self) -> &[Frame] {
        &self.tables.frames
    }

    /// The finished tables: modules, their bias and build id, frames (the
    /// names found are kept in the name cache first).
    /// `process_ends`: see [`crate::image::dispose`].
    pub fn into_tables(mut self, process_ends: bool) -> (FrameTables, Vec<ModuleInfo>) {
        if let Some(r) = self.resolver.as_mut() {
            r.save();
        }
        let tables = std::mem::take(&mut self.tables);
        let module_info = std::mem::take(&mut self.module_info);
        crate::image::dispose(self, process_ends);
        (tables, module_info)
    }

    /// Whether the frames were left unnamed.
    pub fn pending(&self) -> bool {
        self.resolver.is_none()
    }

    fn module_index(&mut self, path: &str, bias: u64, build_id: &[u8]) -> u32 {
        let i = self.tables.module(path);
        if i as usize == self.module_info.len() {
            self.module_info.push(ModuleInfo {
                bias: hex_addr(bias),
                build_id: memscope_symbols::hex(build_id),
            });
        }
        i
    }

    /// The index in `tables` of module `m` (looked up by the module, not by
    /// hashing its path at every address).
    fn module_of(&mut self, m: &'static Module) -> u32 {
        let key = m as *const Module as usize;
        if let Some(&(_, i)) = self.module_ids.iter().find(|(k, _)| *k == key) {
            return i;
        }
        let i = self.module_index(module_path(m, self.exe), m.bias, &m.build_id);
        self.module_ids.push((key, i));
        i
    }

    /// The frames of an address `stack` has not seen: each is new to the
    /// table (every frame holds its address, and an address's inlined
    /// frames differ from each other), so it is added without hashing
    /// whole frames to look for it — for cc1's 5,600 addresses that and
    /// the copies it made were a third of naming its call sites.
    fn resolve(&mut self, ip: u64) -> Vec<u32> {
        let unnamed = |module| Frame {
            ip: hex_addr(ip),
            module,
            ..Frame::default()
        };
        let Some(m) = self.modules().iter().find(|m| m.contains(ip)).copied() else {
            let module = self.module_index(UNKNOWN_MODULE, 0, &[]);
            return vec![self.tables.new_frame(unnamed(module))];
        };
        let module = self.module_of(m);
        let Some(resolver) = self.resolver.as_mut() else {
            return vec![self.tables.new_frame(unnamed(module))];
        };
        let path = module_path(m, self.exe);
        let named = resolver.resolve(
            &ModuleRef {
                path,
                bias: m.bias,
                build_id: &m.build_id,
            },
            ip,
        );
        named
            .into_iter()
            .map(|n| {
                self.tables.new_frame(Frame {
                    ip: hex_addr(ip),
                    function: n.function,
                    file: n.file,
                    line: n.line,
                    module,
                    inlined: n.inlined,
                })
            })
            .collect()
    }
}

/// The file module `m` was loaded from: its own path, or for the main
/// program (whose path is empty) the executable's.
fn module_path<'a>(m: &'a Module, exe: &'a str) -> &'a str {
    if m.path.is_empty() {
        exe
    } else {
        &m.path
    }
}

/// Source directories of code linked into the program that calls the
/// engine (memscope-rs): its frames top every in-process stack.
static OWN_SOURCE_DIRS: [std::sync::OnceLock<&'static str>; 4] = [const { std::sync::OnceLock::new() }; 4];

/// Marks `dir`'s sources as memscope's own (see [`strip_own_frames`]).
pub fn add_own_source_dir(dir: &'static str) {
    for slot in &OWN_SOURCE_DIRS {
        if slot.get() == Some(&dir) || slot.set(dir).is_ok() {
            return;
        }
    }
}

/// Whether a frame is memscope's own: the engine's or memscope-rs's code
/// (by source file: inlined frames carry bare names), or Rust's allocator
/// shims that lead to them.
pub fn is_memscope_frame(f: &Frame) -> bool {
    let own_file = f.file.as_deref().is_some_and(|file| {
        file.starts_with(env!("CARGO_MANIFEST_DIR"))
            || OWN_SOURCE_DIRS
                .iter()
                .filter_map(|d| d.get())
                .any(|d| file.starts_with(d))
    });
    let shim = f.function.as_deref().is_some_and(|name| {
        ["__rust_alloc", "__rust_realloc", "__rust_dealloc", "__rg_", "__rdl_"]
            .iter()
            .any(|s| name.contains(s))
    });
    own_file || shim
}

/// Drops memscope's own frames from the top of a stack (`stack` indexes
/// `frames`).
pub fn strip_own_frames(stack: &mut Vec<u32>, frames: &[Frame]) {
    let own = stack
        .iter()
        .take_while(|&&i| is_memscope_frame(&frames[i as usize]))
        .count();
    stack.drain(..own);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stacks that share outer frames with the one asked before them get
    /// the frames a symbolizer that saw each alone gives (addresses in no
    /// module: one unnamed frame each).
    #[test]
    fn stacks_sharing_outer_frames_get_the_frames_they_would_alone() {
        let stacks: [&[u64]; 7] = [
            &[0x11, 0x12, 0x13, 0x14],
            &[0x21, 0x13, 0x14],
            &[0x13, 0x14],
            &[0x31, 0x32, 0x12, 0x13, 0x14],
            &[0x41, 0x14, 0x99],
            &[],
            &[0x11, 0x12, 0x13, 0x14],
        ];
        let ips_of = |s: &Symbolizer, frames: &[u32]| -> Vec<String> {
            frames.iter().map(|&i| s.frames()[i as usize].ip.clone()).collect()
        };
        let mut shared = Symbolizer::new(false);
        for stack in stacks {
            let got = shared.stack(stack);
            let mut alone = Symbolizer::new(false);
            let want = alone.stack(stack);
            assert_eq!(ips_of(&shared, &got), ips_of(&alone, &want), "{stack:x?}");
            assert_eq!(
                ips_of(&shared, &got),
                stack.iter().map(|&ip| hex_addr(ip)).collect::<Vec<_>>()
            );
        }
    }
}
