//! The loaded objects (program and libraries) and their call-frame
//! information, for the unwinder and for symbolization.
//!
//! The list is immutable once published: a refresh (at start-up, and when
//! the unwinder meets an address no module covers, e.g. in a library just
//! `dlopen`ed) builds a new one and swaps a pointer, so the hot path reads
//! it without a lock. Old lists and modules are never freed, so a reader can
//! never see one vanish, and a module's path stays known for symbolizing
//! addresses of libraries since closed. A module's CFI is read where it
//! lies, never copied ([`Module::with_cfi`]): the main program's at any
//! time (it is mapped as long as the process lives), a library's inside
//! `dl_iterate_phdr`, whose lock keeps it loaded meanwhile, so a `dlclose`
//! cannot pull memory from under an unwind. (Copying a library's CFI on
//! first use cost each short image ~100 page faults for libc alone, and a
//! big program's own — cc1: 2.7 MB — some 1,000; rules are derived once
//! per function and cached, so the lock is taken once per function.)
//! Nothing here takes a lock of memscope's, so a `fork` at any moment leaves
//! the child nothing to untangle.
//!
//! `dlopen` itself is not hooked: glibc resolves a relative library name
//! against the *calling* object's RUNPATH, which a hook would change.

use crate::thread::Guard;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

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
    /// Runtime ranges of its loadable segments: `.eh_frame` is read no
    /// further than the end of the one that holds it.
    segments: Vec<(u64, u64)>,
    /// The GNU build id: finds separate debug info
    /// (`/usr/lib/debug/.build-id/…`) when symbolizing.
    pub build_id: Vec<u8>,
}

/// A module's unwind info where it lies.
#[derive(Debug)]
pub struct Cfi<'a> {
    pub hdr_addr: u64,
    pub hdr: &'a [u8],
    pub frame_addr: u64,
    /// From `.eh_frame`'s start to the end of its segment.
    pub frame: &'a [u8],
}

impl Module {
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// `f` of the module's unwind info, read in place while the module is
    /// surely mapped. `Err(())` while the module is not loaded (closed
    /// since the list was made; it may come back at the same place, so
    /// nothing is remembered); `Ok(None)` when it has no usable unwind info.
    #[allow(clippy::result_unit_err)]
    pub fn with_cfi<R, F: FnOnce(&Cfi) -> R>(&'static self, f: F) -> Result<Option<R>, ()> {
        if self.eh_frame_hdr.is_none() {
            return Ok(None);
        }
        if self.path.is_empty() {
            // The main program: mapped as long as the process lives.
            // SAFETY: its segments are mapped for good.
            return Ok(unsafe { self.cfi_in_place() }.map(|c| f(&c)));
        }
        let _g = Guard::enter();
        let mut job = Job {
            module: self,
            f: Some(f),
            result: None,
        };
        // SAFETY: the callback only reads the program headers it is given,
        // and reads this module's CFI only while the loader lists it.
        unsafe {
            libc::dl_iterate_phdr(
                Some(run_if_loaded::<R, F>),
                &mut job as *mut Job<R, F> as *mut libc::c_void,
            );
        }
        job.result.ok_or(())
    }

    /// The module's CFI where it lies.
    ///
    /// # Safety
    /// The module must stay mapped while the result is used.
    unsafe fn cfi_in_place(&self) -> Option<Cfi<'static>> {
        let (hdr_addr, hdr_len) = self.eh_frame_hdr?;
        let hdr = std::slice::from_raw_parts(hdr_addr as *const u8, hdr_len);
        // version 1, eh_frame_ptr encoded as pcrel|sdata4 (what every linker emits).
        if hdr.len() < 8 || hdr[0] != 1 || hdr[1] != 0x1b {
            return None;
        }
        let rel = i32::from_le_bytes(hdr[4..8].try_into().ok()?) as i64;
        let frame_addr = (hdr_addr as i64).wrapping_add(4 + rel) as u64;
        let &(_, end) = self.segments.iter().find(|(lo, hi)| (*lo..*hi).contains(&frame_addr))?;
        let frame = std::slice::from_raw_parts(frame_addr as *const u8, (end - frame_addr) as usize);
        Some(Cfi {
            hdr_addr,
            hdr,
            frame_addr,
            frame,
        })
    }
}

/// What [`run_if_loaded`] runs, on which module, and what it gave.
struct Job<R, F> {
    module: &'static Module,
    f: Option<F>,
    /// `None`: not loaded; `Some(r)`: loaded, and `f`'s result (`None`
    /// when its CFI is unusable).
    result: Option<Option<R>>,
}

/// `dl_iterate_phdr` callback: runs `Job::f` on the CFI of `Job::module`
/// if it is one of the loaded objects (the loader's lock is held meanwhile).
unsafe extern "C" fn run_if_loaded<R, F: FnOnce(&Cfi) -> R>(
    info: *mut libc::dl_phdr_info,
    _: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    let job = &mut *(data as *mut Job<R, F>);
    let m = job.module;
    let info = &*info;
    if info.dlpi_addr as u64 != m.bias || load_range(info) != Some((m.start, m.end)) || name(info) != m.path {
        return 0;
    }
    let f = job.f.take();
    job.result = Some(m.cfi_in_place().and_then(|c| f.map(|f| f(&c))));
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
    let mut segments = Vec::new();
    for p in phdrs(info) {
        if p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_R != 0 {
            segments.push((bias + p.p_vaddr, bias + p.p_vaddr + p.p_memsz));
        }
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
        segments,
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
