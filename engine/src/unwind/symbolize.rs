//! Return addresses → function, file and line, when a snapshot is written.
//!
//! addr2line reads each module's DWARF (inlined frames included) and falls
//! back to its symbol table; names are demangled (Rust legacy and v0, C++).
//! Modules are looked up among every module the process ever loaded, so a
//! library `dlclose`d before the end still gets its names.

use super::modules::{self, Module};
use memscope_format::{hex_addr, Frame, FrameTables, UNKNOWN_MODULE};
use std::collections::HashMap;

/// Names addresses into a snapshot's `modules` and `frames` tables (format
/// version 2): each address is resolved once, each frame stored once.
pub struct Symbolizer {
    modules: Vec<&'static Module>,
    loaders: HashMap<String, Option<addr2line::Loader>>,
    /// Separate debug files, by module path, used for their symbol tables.
    debug_symbols: HashMap<String, Option<FunctionSymbols>>,
    /// Each address's frames (its inlined frames first) in `tables`.
    by_ip: HashMap<u64, Vec<u32>>,
    tables: FrameTables,
    exe: String,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    pub fn new() -> Symbolizer {
        let mut mods = modules::all_seen();
        // The currently loaded one wins where a range was reused.
        let current = modules::current().modules.clone();
        mods.retain(|m| !current.iter().any(|c| std::ptr::eq(*c, *m)));
        mods.splice(0..0, current);
        let exe = std::fs::read_link("/proc/self/exe")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        Symbolizer {
            modules: mods,
            loaders: HashMap::new(),
            debug_symbols: HashMap::new(),
            by_ip: HashMap::new(),
            tables: FrameTables::new(),
            exe,
        }
    }

    /// The frames of one stack of return addresses, innermost first, each
    /// address expanded into its inlined frames: indices into the tables.
    pub fn stack(&mut self, ips: &[u64]) -> Vec<u32> {
        let mut out = Vec::with_capacity(ips.len());
        for &ip in ips {
            if !self.by_ip.contains_key(&ip) {
                let frames = self.resolve(ip);
                let module = self.tables.module(&frames.1);
                let indices = frames
                    .0
                    .into_iter()
                    .map(|f| self.tables.frame(Frame { module, ..f }))
                    .collect();
                self.by_ip.insert(ip, indices);
            }
            out.extend_from_slice(&self.by_ip[&ip]);
        }
        out
    }

    /// The frames so far (for [`strip_own_frames`]).
    pub fn frames(&self) -> &[Frame] {
        &self.tables.frames
    }

    /// The finished `modules` and `frames` tables.
    pub fn into_tables(self) -> FrameTables {
        self.tables
    }

    /// An address's frames (their `module` not yet set) and its module's path.
    fn resolve(&mut self, ip: u64) -> (Vec<Frame>, String) {
        let Some(m) = self.modules.iter().find(|m| m.contains(ip)).copied() else {
            let unknown = Frame {
                ip: hex_addr(ip),
                ..Frame::default()
            };
            return (vec![unknown], UNKNOWN_MODULE.to_owned());
        };
        let path = if m.path.is_empty() {
            self.exe.clone()
        } else {
            m.path.clone()
        };
        let loader = self
            .loaders
            .entry(path.clone())
            .or_insert_with(|| addr2line::Loader::new(&path).ok());
        let Some(loader) = loader.as_ref() else {
            let unnamed = Frame {
                ip: hex_addr(ip),
                ..Frame::default()
            };
            return (vec![unnamed], path);
        };
        // A return address points after its call: look up the call itself.
        let probe = ip
            .wrapping_sub(m.bias)
            .wrapping_sub(1)
            .wrapping_add(loader.relative_address_base());
        let mut frames = Vec::new();
        if let Ok(mut iter) = loader.find_frames(probe) {
            while let Ok(Some(f)) = iter.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok())
                    .map(|n| n.into_owned());
                let (file, line) = match &f.location {
                    Some(l) => (l.file.map(str::to_owned), l.line),
                    None => (None, None),
                };
                frames.push(Frame {
                    ip: hex_addr(ip),
                    function,
                    file,
                    line,
                    module: 0,
                    inlined: true,
                });
            }
        }
        if let Some(last) = frames.last_mut() {
            last.inlined = false;
        }
        if frames.iter().all(|f| f.function.is_none()) {
            // No DWARF here (or none naming the function): the symbol table.
            let demangle = |s: &str| addr2line::demangle_auto(std::borrow::Cow::Borrowed(s), None).into_owned();
            let mut function = loader.find_symbol(probe).map(demangle);
            if function.is_none() {
                // A static function of a stripped library: the separate
                // debug file's full symbol table names it (its DWARF is
                // not parsed: for libc that alone costs ~100 ms at exit).
                let debug = self
                    .debug_symbols
                    .entry(path.clone())
                    .or_insert_with(|| debug_file(&m.build_id).and_then(|d| FunctionSymbols::read(&d)));
                function = debug.as_ref().and_then(|d| d.find(probe)).map(demangle);
            }
            match frames.last_mut() {
                Some(f) => f.function = function,
                None => frames.push(Frame {
                    ip: hex_addr(ip),
                    function,
                    ..Frame::default()
                }),
            }
        }
        (frames, path)
    }
}

/// A file's function symbols, sorted by address: `(start, size, name)`.
struct FunctionSymbols(Vec<(u64, u64, String)>);

impl FunctionSymbols {
    fn read(path: &std::path::Path) -> Option<FunctionSymbols> {
        use object::{Object, ObjectSymbol, SymbolKind};
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: a read-only private mapping of a debug file nobody
        // rewrites while we read it (a truncation would fault, as it would
        // for addr2line's own mapping).
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let obj = object::File::parse(&*map).ok()?;
        let mut syms: Vec<(u64, u64, String)> = obj
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())))
            .collect();
        syms.sort_unstable_by_key(|s| s.0);
        Some(FunctionSymbols(syms))
    }

    fn find(&self, probe: u64) -> Option<&str> {
        let i = self.0.partition_point(|s| s.0 <= probe).checked_sub(1)?;
        let (start, size, name) = &self.0[i];
        (size == &0 || probe < start + size).then_some(name.as_str())
    }
}

/// The separate debug file of a build id, if installed (Debian's `-dbg`
/// and `-dbgsym` packages put them there): it has the full symbol table
/// and DWARF that the stripped library lacks.
fn debug_file(build_id: &[u8]) -> Option<std::path::PathBuf> {
    let (first, rest) = build_id.split_first()?;
    let hex: String = rest.iter().map(|b| format!("{b:02x}")).collect();
    let p = std::path::PathBuf::from(format!("/usr/lib/debug/.build-id/{first:02x}/{hex}.debug"));
    p.is_file().then_some(p)
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
    let own = stack.iter().take_while(|&&i| is_memscope_frame(&frames[i as usize])).count();
    stack.drain(..own);
}
