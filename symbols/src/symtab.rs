//! An ELF file's symbol table as an address → name lookup that reads the
//! table once per batch of addresses and keeps nothing of it: a snapshot
//! names a few dozen addresses per module, and indexing libc's 10,000
//! symbols with their names (what `object`'s `SymbolMap`, which addr2line's
//! loader builds, does) cost a short process more than everything else it
//! did at exit.
//!
//! The choice among symbols follows `object::read::SymbolMapBuilder` (the one
//! addr2line's `find_symbol` used): defined text, data and untyped symbols;
//! at one address the sized, the global and the later one; a symbol without
//! a size reaches to the next symbol or section end.

use object::elf::{self, Sym64};
use object::read::elf::{ElfFile64, SectionHeader, Sym};
use object::{Endianness, SectionIndex};

/// The best symbol seen so far for one address: lower `rank` is better.
#[derive(Clone, Copy)]
struct Candidate {
    address: u64,
    /// (priority, later-first index), as `SymbolMapBuilder` orders them.
    rank: (u32, u32),
    size: u64,
    name: u32,
}

/// A file's `.symtab` (or `.dynsym` when it has none), read from its mapping.
pub struct SymbolTable {
    map: memmap2::Mmap,
    /// File range of the string table the names point into.
    strings: std::ops::Range<usize>,
    /// Which table: its section index.
    table: SectionIndex,
}

impl SymbolTable {
    /// The symbol table of the ELF file in `map` (None when it has none, or
    /// is not a 64-bit ELF of this machine's byte order).
    pub fn new(map: memmap2::Mmap) -> Option<SymbolTable> {
        let (table, strings) = {
            let file = ElfFile64::<Endianness>::parse(&*map).ok()?;
            let endian = file.endian();
            let symbols = Some(file.elf_symbol_table())
                .filter(|t| !t.is_empty())
                .or_else(|| Some(file.elf_dynamic_symbol_table()).filter(|t| !t.is_empty()))?;
            let strtab = file.elf_section_table().section(symbols.string_section()).ok()?;
            let start = usize::try_from(strtab.sh_offset.get(endian)).ok()?;
            let len = usize::try_from(strtab.sh_size.get(endian)).ok()?;
            (
                symbols.section(),
                start..start.checked_add(len).filter(|&e| e <= map.len())?,
            )
        };
        Some(SymbolTable { map, strings, table })
    }

    /// The names of the symbols containing each of `probes` (file
    /// addresses, ascending), in one pass over the table.
    pub fn find_sorted(&self, probes: &[u64]) -> Vec<Option<&str>> {
        let mut names = vec![None; probes.len()];
        if probes.is_empty() {
            return names;
        }
        let Some((best, section_ends)) = self.scan(probes) else {
            return names;
        };
        // A probe's symbol is the best one at the highest address at or
        // below it: in its own bucket, or else the nearest one before.
        let mut current: Option<Candidate> = None;
        for (i, &probe) in probes.iter().enumerate() {
            if best[i].is_some() {
                current = best[i];
            }
            let Some(c) = current else { continue };
            let contained = match c.size {
                0 => !section_ends.iter().any(|&e| e > c.address && e <= probe),
                size => probe - c.address < size,
            };
            if contained {
                names[i] = std::str::from_utf8(self.name(c.name)).ok();
            }
        }
        names
    }

    /// For each probe, the best symbol with an address in (previous probe,
    /// probe]; and the ends of the file's sections.
    fn scan(&self, probes: &[u64]) -> Option<(Vec<Option<Candidate>>, Vec<u64>)> {
        let file = ElfFile64::<Endianness>::parse(&*self.map).ok()?;
        let endian = file.endian();
        let sections = file.elf_section_table();
        let syms: &[Sym64<Endianness>] = sections
            .section(self.table)
            .ok()?
            .data_as_array(endian, &*self.map)
            .ok()?;
        let mut best: Vec<Option<Candidate>> = vec![None; probes.len()];
        for (i, sym) in syms.iter().enumerate() {
            // What the entry itself tells first; its name (a read elsewhere
            // in the file) only for a symbol that would be chosen.
            let Some(priority) = priority(sym, endian) else {
                continue;
            };
            let address = sym.st_value(endian);
            let bucket = probes.partition_point(|&p| p < address);
            let Some(slot) = best.get_mut(bucket) else {
                continue;
            };
            let c = Candidate {
                address,
                rank: (priority, !(i as u32)),
                size: sym.st_size(endian),
                name: sym.st_name(endian),
            };
            let better = |b: Candidate| c.address > b.address || (c.address == b.address && c.rank < b.rank);
            if slot.is_none_or(better) && self.is_named(sym, c.name) {
                *slot = Some(c);
            }
        }
        let ends = sections
            .iter()
            .map(|s| s.sh_addr.get(endian).saturating_add(s.sh_size.get(endian)))
            .collect();
        Some((best, ends))
    }

    /// The NUL-terminated name at `offset` in the string table.
    fn name(&self, offset: u32) -> &[u8] {
        let rest = self.strings_at(offset);
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..len]
    }

    /// The string table from `offset` on.
    fn strings_at(&self, offset: u32) -> &[u8] {
        let strings = &self.map[self.strings.clone()];
        strings.get(offset as usize..).unwrap_or_default()
    }

    /// Whether a symbol has a name, and is not a mapping symbol (`$x`).
    fn is_named(&self, sym: &Sym64<Endianness>, name: u32) -> bool {
        let name = self.strings_at(name);
        let mapping = sym.st_type() == elf::STT_NOTYPE && sym.st_bind() == elf::STB_LOCAL && name.starts_with(b"$");
        name.first().is_some_and(|&b| b != 0) && !mapping
    }
}

/// How good a symbol is at its address (lower is better), or None when it
/// names no code or data (undefined, a section, a file, TLS).
fn priority(sym: &Sym64<Endianness>, endian: Endianness) -> Option<u32> {
    let shndx = sym.st_shndx(endian);
    if shndx.is_special() && shndx != elf::SHN_XINDEX {
        return None;
    }
    let unknown_kind = match sym.st_type() {
        elf::STT_FUNC | elf::STT_OBJECT => 0,
        elf::STT_NOTYPE => 1,
        _ => return None,
    };
    let scope = match sym.st_bind() {
        elf::STB_LOCAL => 2,
        elf::STB_GLOBAL | elf::STB_WEAK if sym.st_visibility() == elf::STV_HIDDEN => 1,
        elf::STB_GLOBAL | elf::STB_WEAK => 0,
        _ => 3,
    };
    Some(((unknown_kind * 2) * 2 + u32::from(sym.st_size(endian) == 0)) * 4 + scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::{Object, ObjectSymbol};

    /// Addresses around every symbol of a file and its sections' ends, in
    /// ascending order.
    fn probes(obj: &object::File) -> Vec<u64> {
        use object::ObjectSection;
        let mut p: Vec<u64> = obj
            .symbols()
            .chain(obj.dynamic_symbols())
            .flat_map(|s| [s.address(), s.address() + s.size() / 2, s.address() + s.size()])
            .chain(obj.sections().map(|s| s.address() + s.size()))
            .flat_map(|a| [a.saturating_sub(1), a, a + 1])
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    }

    /// Every address around every symbol gets the name `object`'s
    /// `SymbolMap` gives it (what addr2line's `find_symbol` returned), both
    /// asked all at once and one at a time.
    fn assert_names_as_symbol_map(path: &str) {
        let map = crate::files::map_file(std::path::Path::new(path)).unwrap();
        let obj = object::File::parse(&*map).unwrap();
        let reference = obj.symbol_map();
        assert!(!reference.symbols().is_empty(), "{path}: no symbols");
        let probes = probes(&obj);
        let table = SymbolTable::new(crate::files::map_file(std::path::Path::new(path)).unwrap()).unwrap();
        let found = table.find_sorted(&probes);
        let mut named = 0;
        for (i, &p) in probes.iter().enumerate() {
            let want = reference.containing(p).map(|s| s.name());
            assert_eq!(found[i], want, "{path} at {p:#x}");
            named += usize::from(want.is_some());
        }
        assert!(named > probes.len() / 4, "{path}: {named} of {} named", probes.len());
        for &p in probes.iter().step_by(97) {
            assert_eq!(table.find_sorted(&[p])[0], reference.containing(p).map(|s| s.name()));
        }
    }

    #[test]
    fn names_this_binary_as_symbol_map_does() {
        assert_names_as_symbol_map(&crate::tests::this_binary().0);
    }

    /// libc: a `.dynsym` only (Debian strips it), and its debug file's
    /// `.symtab` where one is installed.
    #[test]
    fn names_libc_as_symbol_map_does() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let libc = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("/libc.so"))
            .expect("libc mapped")
            .to_owned();
        assert_names_as_symbol_map(&libc);
        let map = crate::files::map_file(std::path::Path::new(&libc)).unwrap();
        let id = object::File::parse(&*map)
            .unwrap()
            .build_id()
            .unwrap()
            .unwrap()
            .to_vec();
        let (first, rest) = id.split_first().unwrap();
        let debug = format!("/usr/lib/debug/.build-id/{first:02x}/{}.debug", crate::hex(rest));
        if std::path::Path::new(&debug).exists() {
            assert_names_as_symbol_map(&debug);
        }
    }
}
