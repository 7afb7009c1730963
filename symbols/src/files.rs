//! Module files: the loader over a file's DWARF and symbols, its separate
//! debug file, and the check that the file is the object that was loaded.

/// An opened module file.
pub struct ModuleFile {
    pub loader: addr2line::Loader,
    /// The separate debug file's symbol table, read when first needed.
    pub debug_symbols: Option<Option<FunctionSymbols>>,
    /// Symbol names demangled so far, by their mangled form.
    pub demangled: std::collections::HashMap<String, String>,
}

impl ModuleFile {
    /// Opens `path`; None when it cannot be read, or when `build_id` is
    /// known and the file's differs (it was rebuilt or replaced since the
    /// process loaded it: its names would be wrong).
    pub fn open(path: &str, build_id: &[u8]) -> Option<ModuleFile> {
        if !build_id.is_empty() && file_build_id(path).is_some_and(|id| id != build_id) {
            return None;
        }
        Some(ModuleFile {
            loader: addr2line::Loader::new(path).ok()?,
            debug_symbols: None,
            demangled: Default::default(),
        })
    }
}

/// The GNU build id of the ELF file at `path`, if it has one.
fn file_build_id(path: &str) -> Option<Vec<u8>> {
    use object::Object;
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: a read-only private mapping; a file truncated while we read
    // it would fault, as it would for addr2line's own mapping.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let obj = object::File::parse(&*map).ok()?;
    obj.build_id().ok().flatten().map(<[u8]>::to_vec)
}

/// A file's function symbols, sorted by address: `(start, size, name)`.
pub struct FunctionSymbols(Vec<(u64, u64, String)>);

impl FunctionSymbols {
    pub fn read(path: &std::path::Path) -> Option<FunctionSymbols> {
        use object::{Object, ObjectSymbol, SymbolKind};
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: a read-only private mapping of a debug file nobody
        // rewrites while we read it.
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

    pub fn find(&self, probe: u64) -> Option<&str> {
        let i = self.0.partition_point(|s| s.0 <= probe).checked_sub(1)?;
        let (start, size, name) = &self.0[i];
        (size == &0 || probe < start + size).then_some(name.as_str())
    }
}

/// The separate debug file of a build id, if installed (Debian's `-dbg`
/// and `-dbgsym` packages put them there): it has the full symbol table
/// and DWARF that the stripped library lacks.
pub fn debug_file(build_id: &[u8]) -> Option<std::path::PathBuf> {
    let (first, rest) = build_id.split_first()?;
    let p = std::path::PathBuf::from(format!(
        "/usr/lib/debug/.build-id/{first:02x}/{}.debug",
        crate::hex(rest)
    ));
    p.is_file().then_some(p)
}
