//! Module files: a file's DWARF (when it has any) and symbol table, its
//! separate debug file, and the check that the file is the object that was
//! loaded.

use crate::dwarf::Dwarf;
use crate::symtab::SymbolTable;

/// An opened module file.
pub struct ModuleFile {
    /// The file's DWARF; None when it has none (most installed programs
    /// and libraries).
    pub dwarf: Option<Dwarf>,
    /// The file's own symbol table.
    pub symbols: Option<SymbolTable>,
    /// The separate debug file's symbol table, opened when first needed.
    pub debug_symbols: Option<Option<SymbolTable>>,
    /// Symbol names demangled so far, by their mangled form.
    pub demangled: std::collections::HashMap<String, String>,
}

impl ModuleFile {
    /// Opens `path`; None when it cannot be read, or when `build_id` is
    /// known and the file's differs (it was rebuilt or replaced since the
    /// process loaded it: its names would be wrong).
    pub fn open(path: &str, build_id: &[u8]) -> Option<ModuleFile> {
        let map = map_file(std::path::Path::new(path))?;
        let (file_id, has_dwarf) = inspect(&map)?;
        if !build_id.is_empty() && file_id.is_some_and(|id| id != build_id) {
            return None;
        }
        let dwarf = match has_dwarf {
            true => Some(Dwarf::open(path)?),
            false => None,
        };
        Some(ModuleFile {
            dwarf,
            symbols: SymbolTable::new(map),
            debug_symbols: None,
            demangled: Default::default(),
        })
    }
}

/// The GNU build id of the (64-bit) ELF file in `map`, and whether it has
/// DWARF. Section names are compared here rather than with `object`'s
/// lookup by name, which searches with memchr: its first use asks the CPU
/// for its features, and each CPUID instruction costs ~8 µs in a VM (10 of
/// them, at the end of every image that names its frames).
fn inspect(map: &[u8]) -> Option<(Option<&[u8]>, bool)> {
    use object::read::elf::ElfFile64;
    use object::{Endianness, Object};
    let file = ElfFile64::<Endianness>::parse(map).ok()?;
    let has_dwarf = crate::dwarf::SectionNames::new(&file, map)?
        .find(".debug_info")
        .is_some();
    Some((file.build_id().ok().flatten(), has_dwarf))
}

/// The GNU build id of the ELF file at `path` (None if it has none).
pub fn file_build_id(path: &std::path::Path) -> Option<Vec<u8>> {
    let map = map_file(path)?;
    inspect(&map)?.0.map(<[u8]>::to_vec)
}

/// A read-only mapping of the file at `path`.
pub fn map_file(path: &std::path::Path) -> Option<memmap2::Mmap> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: a read-only private mapping of a module or debug file; a
    // file truncated while we read it would fault, as it would for
    // addr2line's own mapping.
    unsafe { memmap2::Mmap::map(&file) }.ok()
}

/// The symbol table of the separate debug file of a build id, if one is
/// installed (Debian's `-dbg` and `-dbgsym` packages put them there): it
/// has the full symbol table that the stripped library lacks.
pub fn debug_symbols(build_id: &[u8]) -> Option<SymbolTable> {
    SymbolTable::new(map_file(&debug_file(std::path::Path::new(DEBUG_ROOT), build_id)?)?)
}

/// Where separate debug files are installed.
pub const DEBUG_ROOT: &str = "/usr/lib/debug";

/// The separate debug file of `build_id` below `root` (whether or not it
/// exists); None for an empty build id.
pub fn debug_file(root: &std::path::Path, build_id: &[u8]) -> Option<std::path::PathBuf> {
    let (first, rest) = build_id.split_first()?;
    Some(root.join(format!(".build-id/{first:02x}/{}.debug", crate::hex(rest))))
}
