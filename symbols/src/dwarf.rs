//! A module file's DWARF for addr2line, read in place from the file's
//! mapping (decompressed where a section is compressed), with split DWARF
//! units found in their `.dwo` files or the `.dwp` package beside the file.
//!
//! Why not addr2line's `Loader`: it also indexes the whole ELF symbol table
//! by address (`object`'s `SymbolMap`: every symbol's name, sorted) for its
//! `find_symbol`, which memscope never calls — symbol names come from
//! [`crate::symtab`], which reads only the entries it needs. For node
//! (110,000 symbols, DWARF for a few of its objects) that index was about
//! half of naming a snapshot's frames at exit.

use crate::files::map_file;
use crate::Named;
use addr2line::gimli;
use addr2line::{LookupContinuation, LookupResult, SplitDwarfLoad};
use memmap2::Mmap;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{Endianness, Object, ObjectSection, SectionIndex};
use std::borrow::Cow;
use std::cell::RefCell;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the DWARF is read through: slices of the mappings and buffers
/// [`Dwarf`] owns, given a `'static` lifetime that never leaves it.
type R = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// A module file's DWARF context and the data it reads.
pub struct Dwarf {
    // Fields drop in order: the context and the split units first, then
    // the data their slices point into (which never moves: mappings, and
    // boxed buffers).
    ctx: addr2line::Context<R>,
    package: Option<gimli::DwarfPackage<R>>,
    buffers: RefCell<Vec<Box<[u8]>>>,
    maps: RefCell<Vec<Mmap>>,
}

impl Dwarf {
    /// The DWARF of the file at `path` (None when it cannot be read).
    pub fn open(path: &str) -> Option<Dwarf> {
        let map = map_file(Path::new(path))?;
        let mut d = Dwarf {
            ctx: addr2line::Context::from_dwarf(gimli::Dwarf::default()).ok()?,
            package: None,
            buffers: RefCell::new(Vec::new()),
            maps: RefCell::new(Vec::new()),
        };
        let data = d.keep_map(map);
        let mut dwarf = d.sections(data, false)?;
        dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
        d.ctx = addr2line::Context::from_dwarf(dwarf).ok()?;
        d.package = d.open_package(path);
        Some(d)
    }

    /// The frames at file address `probe`, innermost (inlined) first, all
    /// but the outermost marked inlined; owned, so nothing borrowed from
    /// the file leaves `self`.
    pub fn frames(&self, probe: u64) -> Vec<Named> {
        let mut lookup = self.ctx.find_frames(probe);
        let mut iter = loop {
            match lookup {
                LookupResult::Output(Ok(iter)) => break iter,
                LookupResult::Output(Err(_)) => return Vec::new(),
                LookupResult::Load { load, continuation } => lookup = continuation.resume(self.split_unit(load)),
            }
        };
        let mut out = Vec::new();
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
            out.push(Named {
                function,
                file,
                line,
                inlined: true,
            });
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        out
    }

    /// Keeps `map` for as long as `self`, and returns its bytes.
    fn keep_map(&self, map: Mmap) -> &'static [u8] {
        // SAFETY: the mapping's pages stay where they are until the `Mmap`
        // is dropped, which happens only with `self`, after every context
        // that holds slices of them (field order); no slice leaves `self`.
        let data: &'static [u8] = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
        self.maps.borrow_mut().push(map);
        data
    }

    /// The DWARF sections of the ELF file in `data` (`dwo`: a split unit's
    /// `.dwo` sections). Sections it lacks are empty.
    fn sections(&self, data: &'static [u8], dwo: bool) -> Option<gimli::Dwarf<R>> {
        let (file, endian, index) = elf(data)?;
        gimli::Dwarf::load(|id| {
            let name = if dwo { id.dwo_name() } else { Some(id.name()) };
            self.load(&file, endian, &index, name)
        })
        .ok()
    }

    /// The section called `name` of `file`, empty when it has none.
    fn load(
        &self,
        file: &ElfFile64<'static, Endianness>,
        endian: gimli::RunTimeEndian,
        index: &SectionNames<'static>,
        name: Option<&str>,
    ) -> Result<R, gimli::Error> {
        let bytes = name
            .and_then(|n| index.find(n))
            .map_or(&[][..], |i| self.section(file, i));
        Ok(gimli::EndianSlice::new(bytes, endian))
    }

    /// Section `i`'s bytes, decompressed if need be (kept in `self`).
    fn section(&self, file: &ElfFile64<'static, Endianness>, i: SectionIndex) -> &'static [u8] {
        match file.section_by_index(i).ok().and_then(|s| s.uncompressed_data().ok()) {
            Some(Cow::Borrowed(b)) => b,
            Some(Cow::Owned(v)) => {
                let b = v.into_boxed_slice();
                // SAFETY: as in `keep_map`: a boxed buffer's bytes do not
                // move when the box does, and it is dropped with `self`.
                let data: &'static [u8] = unsafe { std::slice::from_raw_parts(b.as_ptr(), b.len()) };
                self.buffers.borrow_mut().push(b);
                data
            }
            None => &[],
        }
    }

    /// The DWARF package (`<file>.dwp`) beside the file, if there is one.
    fn open_package(&self, path: &str) -> Option<gimli::DwarfPackage<R>> {
        let data = self.keep_map(map_file(Path::new(&format!("{path}.dwp")))?);
        let (file, endian, index) = elf(data)?;
        let empty = gimli::EndianSlice::new(&[][..], endian);
        gimli::DwarfPackage::load(|id| self.load(&file, endian, &index, id.dwo_name()), empty).ok()
    }

    /// A split unit's DWARF: from the package, else from its `.dwo` file
    /// (its path relative to the unit's compilation directory).
    fn split_unit(&self, load: SplitDwarfLoad<R>) -> Option<Arc<gimli::Dwarf<R>>> {
        if let Some(p) = &self.package {
            if let Ok(Some(cu)) = p.find_cu(load.dwo_id, &load.parent) {
                return Some(Arc::new(cu));
            }
        }
        let mut path = PathBuf::new();
        if let Some(dir) = &load.comp_dir {
            path.push(std::ffi::OsStr::from_bytes(dir.slice()));
        }
        path.push(std::ffi::OsStr::from_bytes(load.path.as_ref()?.slice()));
        let data = self.keep_map(map_file(&path)?);
        let mut dwo = self.sections(data, true)?;
        let header = dwo.units().next().ok()??;
        if dwo.unit(header).ok()?.dwo_id != Some(load.dwo_id) {
            return None;
        }
        dwo.make_dwo(&load.parent);
        Some(Arc::new(dwo))
    }
}

/// The ELF file in `data`, its byte order and its section names.
fn elf(
    data: &'static [u8],
) -> Option<(
    ElfFile64<'static, Endianness>,
    gimli::RunTimeEndian,
    SectionNames<'static>,
)> {
    let file = ElfFile64::<Endianness>::parse(data).ok()?;
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let index = SectionNames::new(&file, data)?;
    Some((file, endian, index))
}

/// An ELF file's section names, compared in place: `object`'s lookup by
/// name searches with memchr, whose first use asks the CPU for its
/// features (see `files::inspect`).
pub(crate) struct SectionNames<'a> {
    names: Vec<(&'a [u8], SectionIndex)>,
}

impl<'a> SectionNames<'a> {
    pub(crate) fn new(file: &ElfFile64<'a, Endianness>, data: &'a [u8]) -> Option<SectionNames<'a>> {
        let endian = file.endian();
        let sections = file.elf_section_table();
        let shstrndx = file.elf_header().shstrndx(endian, data).ok()?;
        let strings = sections
            .section(SectionIndex(shstrndx as usize))
            .ok()?
            .data(endian, data)
            .ok()?;
        let names = sections
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let from = strings.get(s.sh_name(endian) as usize..)?;
                let name = &from[..from.iter().position(|&b| b == 0)?];
                Some((name, SectionIndex(i)))
            })
            .collect();
        Some(SectionNames { names })
    }

    /// The section called `name`, or its GNU-compressed `.zdebug_` form.
    pub(crate) fn find(&self, name: &str) -> Option<SectionIndex> {
        let z = name.strip_prefix(".debug_").map(|rest| format!(".zdebug_{rest}"));
        self.names
            .iter()
            .find(|(n, _)| *n == name.as_bytes() || z.as_deref().is_some_and(|z| *n == z.as_bytes()))
            .map(|&(_, i)| i)
    }
}
