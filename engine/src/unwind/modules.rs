//! The loaded objects (program and libraries) and their call-frame
//! information, for the unwinder and for symbolization.
//!
//! The list is immutable once published: a refresh (at start-up, and when
//! the unwinder meets an address no module covers, e.g. in a library just
//! `dlopen`ed) builds a new one and swaps a pointer, so the hot path reads
//! it without a lock. Old lists and modules are never freed, so a reader can
//! never see one vanish, and a module's path stays known for symbolizing
//! addresses of libraries since closed. A module's CFI is copied out of its
//! mapping the first time the unwinder needs it ([`Module::cfi`]), inside
//! `dl_iterate_phdr`, whose lock keeps the module loaded during the copy: a
//! later `dlclose` cannot pull memory from under an unwind, and an image
//! pays only for the modules its allocations come through (copying every
//! module's CFI at start-up cost ~175 µs per image, most of it page faults).
//! Nothing here takes a lock of memscope's, so a `fork` at any moment leaves
//! the child nothing to untangle.
//!
//! `dlopen` itself is not hooked: glibc resolves a relative library name
//! against the *calling* object's RUNPATH, which a hook would change.

use crate::thread::Guard;
use std::borrow::Cow;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// One loaded object.
#[derive(Debug)]
pub struct Module {
    /// Path as the loader reports it ("" for the main program: see `path`).
    pub path: String,
    /// Load bias: runtime address = file address + bias.
    pub bias: u64,
    /// Runtime address range of its loadable segments.
    pub start: u64,
    pub end: u64,
    /// Runtime range of its executable segment(s).
    pub text_start: u64,
    pub text_end: u64,
    /// Runtime address and size of `.eh_frame_hdr` (`None`: no unwind info).
    pub eh_frame_hdr: Option<(u64, usize)>,
    /// Its copy with `.eh_frame`'s, made on first use (see [`Module::cfi`]).
    cfi: OnceLock<Option<Cfi>>,
    /// The GNU build id: finds separate debug info
    /// (`/usr/lib/debug/.build-id/…`) when symbolizing.
    pub build_id: Vec<u8>,
}

#[derive(Debug)]
pub struct Cfi {
    pub hdr_addr: u64,
    pub hdr: Cow<'static, [u8]>,
    pub frame_addr: u64,
    pub frame: Cow<'static, [u8]>,
}

impl Module {
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// The module's unwind info, copied on first use while the loader's
    /// lock keeps the module mapped. `Err(())` while the module is not
    /// loaded (closed since the list was made; it may come back at the same
    /// place, so nothing is remembered); `Ok(None)` when it has no usable
    /// unwind info.
    #[allow(clippy::result_unit_err)]
    pub fn cfi(&'static self) -> Result<Option<&'static Cfi>, ()> {
        if let Some(c) = self.cfi.get() {
            return Ok(c.as_ref());
        }
        if self.eh_frame_hdr.is_none() {
            return Ok(self.cfi.get_or_init(|| None).as_ref());
        }
        if self.path.is_empty() {
            // The main program: mapped as long as the process lives, so its
            // unwind info is read where it lies. Copying it cost a big
            // program (cc1: 2.7 MB) ~1,000 page faults and most of a
            // millisecond of copying, for the few functions its stacks pass.
            let (addr, len) = self.eh_frame_hdr.unwrap_or_default();
            // SAFETY: its PT_GNU_EH_FRAME segment and .eh_frame, mapped for
            // good.
            let cfi = unsafe { read_cfi(addr, len, self.end, Cow::Borrowed) };
            return Ok(self.cfi.get_or_init(|| cfi).as_ref());
        }
        let _g = Guard::enter();
        let mut job = CopyJob {
            module: self,
            copied: None,
        };
        // SAFETY: the callback only reads the program headers it is given,
        // and copies from this module only while the loader lists it.
        unsafe {
            libc::dl_iterate_phdr(Some(copy_if_loaded), &mut job as *mut CopyJob as *mut libc::c_void);
        }
        match job.copied {
            // Two threads may both have copied: the first copy stays.
            Some(copy) => Ok(self.cfi.get_or_init(|| copy).as_ref()),
            None => Err(()),
        }
    }
}

/// What [`copy_if_loaded`] looks for, and what it found.
struct CopyJob {
    module: &'static Module,
    /// `None`: not loaded; `Some(copy)`: loaded, and its CFI copy (`None`
    /// when unusable).
    copied: Option<Option<Cfi>>,
}

/// `dl_iterate_phdr` callback: copies the CFI of `CopyJob::module` if it is
/// one of the loaded objects (the loader's lock is held meanwhile).
unsafe extern "C" fn copy_if_loaded(info: *mut libc::dl_phdr_info, _: usize, data: *mut libc::c_void) -> libc::c_int {
    let job = &mut *(data as *mut CopyJob);
    let m = job.module;
    let info = &*info;
    if info.dlpi_addr as u64 != m.bias || load_range(info) != Some((m.start, m.end)) || name(info) != m.path {
        return 0;
    }
    job.copied = Some(
        m.eh_frame_hdr
            .and_then(|(addr, len)| read_cfi(addr, len, m.end, |b| Cow::Owned(b.to_vec()))),
    );
    1
}

/// Modules sorted by start address.
#[derive(Debug, Default)]
pub struct ModuleList {
    pub modules: Vec<&'static Module>,
}

impl ModuleList {
    pub fn find(&self, addr: u64) -> Option<&'static Module> {
        let i = self.modules.partition_point(|m| m.start <= addr);
        let m = self.modules.get(i.checked_sub(1)?)?;
        m.contains(addr).then_some(*m)
    }
}

static CURRENT: AtomicPtr<ModuleList> = AtomicPtr::new(std::ptr::null_mut());
/// Every module ever seen (append-only): a refresh reuses their CFI copies,
/// symbolization finds closed libraries here.
const MAX_SEEN: usize = 4096;
static SEEN: [AtomicPtr<Module>; MAX_SEEN] = [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_SEEN];
static SEEN_LEN: AtomicUsize = AtomicUsize::new(0);
/// Monotonic ns of the last refresh for an unknown address.
static LAST_UNKNOWN_REFRESH: AtomicU64 = AtomicU64::new(0);

/// Bumped by every refresh: memoized walks of older lists are not reused.
static GENERATION: AtomicU64 = AtomicU64::new(1);

pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The current list (empty before the first refresh).
pub fn current() -> &'static ModuleList {
    static EMPTY: ModuleList = ModuleList { modules: Vec::new() };
    // SAFETY: published lists are never freed.
    unsafe { CURRENT.load(Ordering::Acquire).as_ref() }.unwrap_or(&EMPTY)
}

/// Every module seen so far, loaded or not.
pub fn all_seen() -> Vec<&'static Module> {
    seen().collect()
}

fn seen() -> impl Iterator<Item = &'static Module> {
    let n = SEEN_LEN.load(Ordering::Acquire).min(MAX_SEEN);
    // SAFETY: published modules are leaked, never freed.
    SEEN[..n]
        .iter()
        .filter_map(|p| unsafe { p.load(Ordering::Acquire).as_ref() })
}

fn remember(m: &'static Module) {
    let i = SEEN_LEN.fetch_add(1, Ordering::AcqRel);
    if let Some(slot) = SEEN.get(i) {
        slot.store(m as *const Module as *mut Module, Ordering::Release);
    }
}

/// Re-reads the loaded objects (`dl_iterate_phdr`) and publishes the list.
pub fn refresh() {
    let _g = Guard::enter();
    let mut found: Vec<&'static Module> = Vec::new();
    // SAFETY: the callback only reads the program headers it is given.
    unsafe {
        libc::dl_iterate_phdr(
            Some(collect),
            &mut found as *mut Vec<&'static Module> as *mut libc::c_void,
        )
    };
    found.sort_by_key(|m| m.start);
    let list = Box::new(ModuleList { modules: found });
    CURRENT.store(Box::into_raw(list), Ordering::Release);
    GENERATION.fetch_add(1, Ordering::Release);
    // Rules cached for addresses that were unknown, or belonged to a
    // library since replaced, must be computed again.
    super::rules::clear_cache();
}

/// The unwinder met a code address no module covers: most likely in a
/// library loaded since the last refresh, so refresh now (the allocation's
/// stack is then complete), at most every 10 ms (JIT code is unknown for
/// good).
///
/// `dl_iterate_phdr` waits for the loader's lock; that cannot deadlock:
/// this thread holds none of memscope's locks here, and memscope's
/// collector, which other threads may wait for, never takes the loader's.
pub fn refresh_for_unknown_address() -> bool {
    let now = crate::clock::monotonic_ns();
    let last = LAST_UNKNOWN_REFRESH.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 10_000_000
        || LAST_UNKNOWN_REFRESH
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return false;
    }
    refresh();
    true
}

unsafe extern "C" fn collect(info: *mut libc::dl_phdr_info, _: usize, data: *mut libc::c_void) -> libc::c_int {
    let out = &mut *(data as *mut Vec<&'static Module>);
    let info = &*info;
    let Some((start, end)) = load_range(info) else { return 0 };
    let path = name(info);
    if let Some(known) = seen().find(|m| m.start == start && m.end == end && m.path == path) {
        out.push(known);
        return 0;
    }
    let bias = info.dlpi_addr as u64;
    let (mut text_start, mut text_end) = (u64::MAX, 0);
    let mut eh_frame_hdr = None;
    let mut build_id = Vec::new();
    for p in phdrs(info) {
        if p.p_type == libc::PT_NOTE && build_id.is_empty() {
            build_id = find_build_id((bias + p.p_vaddr) as *const u8, p.p_memsz as usize);
        }
        if p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0 {
            text_start = text_start.min(bias + p.p_vaddr);
            text_end = text_end.max(bias + p.p_vaddr + p.p_memsz);
        }
        if p.p_type == libc::PT_GNU_EH_FRAME {
            eh_frame_hdr = Some((bias + p.p_vaddr, p.p_memsz as usize));
        }
    }
    let m: &'static Module = Box::leak(Box::new(Module {
        path: path.into_owned(),
        bias,
        start,
        end,
        text_start,
        text_end,
        eh_frame_hdr,
        cfi: OnceLock::new(),
        build_id,
    }));
    remember(m);
    out.push(m);
    0
}

/// # Safety
/// `info` must come from `dl_iterate_phdr` (valid for the callback).
unsafe fn phdrs(info: &libc::dl_phdr_info) -> &[libc::Elf64_Phdr] {
    std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize)
}

/// Runtime address range of an object's loadable segments.
///
/// # Safety
/// As [`phdrs`].
unsafe fn load_range(info: &libc::dl_phdr_info) -> Option<(u64, u64)> {
    let bias = info.dlpi_addr as u64;
    let (mut start, mut end) = (u64::MAX, 0);
    for p in phdrs(info).iter().filter(|p| p.p_type == libc::PT_LOAD) {
        start = start.min(bias + p.p_vaddr);
        end = end.max(bias + p.p_vaddr + p.p_memsz);
    }
    (start < end).then_some((start, end))
}

/// The object's path as the loader reports it.
///
/// # Safety
/// As [`phdrs`].
unsafe fn name(info: &libc::dl_phdr_info) -> std::borrow::Cow<'_, str> {
    if info.dlpi_name.is_null() {
        std::borrow::Cow::Borrowed("")
    } else {
        std::ffi::CStr::from_ptr(info.dlpi_name).to_string_lossy()
    }
}

/// `.eh_frame_hdr` and the `.eh_frame` it points to (up to its zero
/// terminator, never past the module's end), each kept as `keep` makes it
/// (copied, or borrowed where it lies).
///
/// # Safety
/// `[hdr_addr, hdr_addr + hdr_len)` must be mapped (it is a PT_GNU_EH_FRAME
/// segment of a loaded object), as must `.eh_frame` up to `module_end`;
/// for as long as `keep`'s results are used.
unsafe fn read_cfi(
    hdr_addr: u64,
    hdr_len: usize,
    module_end: u64,
    keep: impl Fn(&'static [u8]) -> Cow<'static, [u8]>,
) -> Option<Cfi> {
    let hdr = std::slice::from_raw_parts(hdr_addr as *const u8, hdr_len);
    // version 1, eh_frame_ptr encoded as pcrel|sdata4 (what every linker emits).
    if hdr.len() < 8 || hdr[0] != 1 || hdr[1] != 0x1b {
        return None;
    }
    let rel = i32::from_le_bytes(hdr[4..8].try_into().ok()?) as i64;
    let frame_addr = (hdr_addr as i64 + 4 + rel) as u64;
    if frame_addr >= module_end {
        return None;
    }
    let max = (module_end - frame_addr) as usize;
    let mut len = 0usize;
    while len + 4 <= max {
        let entry = std::ptr::read_unaligned((frame_addr as usize + len) as *const u32) as usize;
        if entry == 0 || entry == 0xffff_ffff {
            // Terminator (or a 64-bit length, which nothing emits here).
            len += 4;
            break;
        }
        len += 4 + entry;
    }
    let frame = std::slice::from_raw_parts(frame_addr as *const u8, len.min(max));
    Some(Cfi {
        hdr_addr,
        hdr: keep(hdr),
        frame_addr,
        frame: keep(frame),
    })
}

/// The `NT_GNU_BUILD_ID` note's descriptor in a `PT_NOTE` segment.
///
/// # Safety
/// `[at, at + len)` must be mapped (a loaded object's note segment).
unsafe fn find_build_id(at: *const u8, len: usize) -> Vec<u8> {
    let notes = std::slice::from_raw_parts(at, len);
    let word = |i: usize| {
        notes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let mut i = 0;
    while let (Some(namesz), Some(descsz), Some(kind)) = (word(i), word(i + 4), word(i + 8)) {
        let name_at = i + 12;
        let desc_at = name_at + namesz.next_multiple_of(4);
        let next = desc_at + descsz.next_multiple_of(4);
        if kind == 3 && notes.get(name_at..name_at + namesz) == Some(b"GNU\0") {
            return notes
                .get(desc_at..desc_at + descsz)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
        }
        i = next;
    }
    Vec::new()
}
