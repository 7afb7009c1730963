//! Which frames of a stack are allocation wrappers: the allocator itself and
//! the helpers that only pass a request on to it (`sqlite3Malloc`,
//! `operator new`, `RawVec::grow_one`, `PyMem_Malloc`…). A site is named
//! after the first frame past them, as pprof names a sample after dropping
//! its allocator frames, so a user sees which of their functions allocated.
//!
//! Patterns are shell-style globs ([`glob::Pattern`]: `*`, `?`, `[…]`)
//! matched against a frame's whole demangled function name.

use glob::Pattern;

/// The built-in wrapper patterns, by family (README "Site names" lists
/// them). Each matches a whole demangled function name.
pub const BUILTIN: &[(&str, &[&str])] = &[
    (
        "libc",
        &[
            "malloc",
            "calloc",
            "realloc",
            "reallocarray",
            "free",
            "cfree",
            "posix_memalign",
            "aligned_alloc",
            "memalign",
            "valloc",
            "pvalloc",
            "__libc_*",
            "__posix_memalign",
            "strdup",
            "strndup",
            "__strdup",
            "__strndup",
            "wcsdup",
        ],
    ),
    ("memscope", &["memscope_*", "memscope_rs::*", "<memscope_rs::*"]),
    (
        "libstdc++",
        &[
            "operator new*",
            "std::allocator<*",
            "std::allocator_traits<*",
            "std::__new_allocator<*",
            "__gnu_cxx::new_allocator<*",
            "std::_Vector_base<*",
            "std::vector<*",
            "std::__cxx11::basic_string<*",
            "std::basic_string<*",
            "std::__str_concat<*",
            "std::_Hashtable<*",
            "std::__detail::_Hashtable_alloc<*",
            "std::_Rb_tree<*",
        ],
    ),
    (
        "Rust",
        &[
            "__rust_alloc*",
            "__rust_realloc",
            "__rustc::*",
            "__rdl_*",
            "__rg_*",
            "alloc::*",
            "<alloc::*",
            "<* as alloc::*",
            "std::alloc::*",
            "<std::alloc::*",
            "std::sys::alloc::*",
            "<* as core::alloc::global::GlobalAlloc>::*",
            "hashbrown::raw::*",
        ],
    ),
    (
        "CPython",
        &[
            "PyMem_*",
            "_PyMem_*",
            "PyObject_Malloc",
            "PyObject_Calloc",
            "PyObject_Realloc",
            "_PyObject_Malloc",
            "_PyObject_Calloc",
            "_PyObject_Realloc",
            "pymalloc_*",
            "PyObject_GC_*",
            "_PyObject_GC_*",
            "gc_alloc",
        ],
    ),
    (
        "glib",
        &[
            "g_malloc*",
            "g_realloc*",
            "g_try_malloc*",
            "g_try_realloc*",
            "g_slice_alloc*",
            "g_memdup*",
            "g_strdup*",
            "g_strndup",
        ],
    ),
    (
        "sqlite",
        &[
            "sqlite3Malloc*",
            "sqlite3_malloc*",
            "sqlite3Realloc*",
            "sqlite3_realloc*",
            "sqlite3MemMalloc",
            "sqlite3MemRealloc",
            "sqlite3DbMalloc*",
            "sqlite3DbRealloc*",
            "sqlite3DbStrDup",
            "sqlite3DbStrNDup",
            "dbMallocRawFinish",
            "dbReallocFinish",
            "sqlite3PageMalloc",
            "pcache1Alloc",
        ],
    ),
    ("OpenSSL", &["CRYPTO_*", "BUF_MEM_grow*"]),
    (
        "xmalloc-style",
        &[
            "xmalloc",
            "xmallocz",
            "xcalloc",
            "xzalloc",
            "xrealloc",
            "xreallocarray",
            "xnmalloc",
            "xnrealloc",
            "x2realloc",
            "x2nrealloc",
            "xpalloc",
            "xcharalloc",
            "xstrdup",
            "xstrndup",
            "xmemdup",
            "ximalloc",
            "xicalloc",
            "xirealloc",
            "ximemdup*",
        ],
    ),
    (
        "LLVM",
        &[
            "llvm::allocate_buffer*",
            "llvm::safe_malloc*",
            "llvm::safe_calloc*",
            "llvm::safe_realloc*",
            "llvm::MallocAllocator::*",
            "llvm::BumpPtrAllocatorImpl<*",
            "llvm::SmallVectorBase<*>::grow_pod*",
            "llvm::SmallVectorBase<*>::mallocForGrow*",
        ],
    ),
];

/// Rust's `core` library glue (`Iterator::collect`, `Option::map_or_else`,
/// closures' `call_once`): not a wrapper by itself, but when it comes right
/// after wrapper frames it was only passing the request on, so it belongs
/// to them (`format!` reaches `alloc::fmt::format` through
/// `Option::map_or_else`).
pub const GLUE: &[&str] = &["core::", "<core::"];

/// The variable that adds patterns, separated by `;` (which no demangled
/// C or C++ name holds; match one in a Rust array type with `?`).
pub const ENV_VAR: &str = "MEMSCOPE_WRAPPERS";

/// One pattern, with the common shapes (a name, a prefix) matched without
/// the glob machinery: classification runs over every leading frame of
/// every site.
#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Glob(Pattern),
}

impl Matcher {
    fn new(p: &str) -> Result<Matcher, String> {
        if p.trim().is_empty() {
            return Err("an empty wrapper pattern".into());
        }
        let special = |c: char| matches!(c, '*' | '?' | '[' | ']');
        if !p.contains(special) {
            return Ok(Matcher::Exact(p.to_owned()));
        }
        if let Some(head) = p.strip_suffix('*') {
            if !head.contains(special) {
                return Ok(Matcher::Prefix(head.to_owned()));
            }
        }
        Pattern::new(p)
            .map(Matcher::Glob)
            .map_err(|e| format!("invalid wrapper pattern {p:?}: {} (at character {})", e.msg, e.pos + 1))
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Exact(s) => name == s,
            Matcher::Prefix(s) => name.starts_with(s.as_str()),
            Matcher::Glob(g) => g.matches(name),
        }
    }
}

/// The wrapper patterns in force: the built-in list and the user's.
#[derive(Debug, Clone)]
pub struct Wrappers {
    matchers: Vec<Matcher>,
}

impl Default for Wrappers {
    fn default() -> Wrappers {
        Wrappers::builtin()
    }
}

impl Wrappers {
    /// The built-in list ([`BUILTIN`]) alone.
    pub fn builtin() -> Wrappers {
        let matchers = BUILTIN
            .iter()
            .flat_map(|(_, ps)| ps.iter())
            .map(|p| Matcher::new(p).expect("built-in patterns are valid"))
            .collect();
        Wrappers { matchers }
    }

    /// The built-in list and `extra` patterns; the error is one line
    /// naming the first invalid pattern.
    pub fn with<S: AsRef<str>>(extra: &[S]) -> Result<Wrappers, String> {
        let mut w = Wrappers::builtin();
        for p in extra {
            w.matchers.push(Matcher::new(p.as_ref())?);
        }
        Ok(w)
    }

    /// Splits the value of [`ENV_VAR`] into patterns (empty items dropped).
    pub fn split_env(value: &str) -> Vec<String> {
        value
            .split(';')
            .filter(|p| !p.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether a frame is a wrapper: its function matches a pattern, or it
    /// lies in libmemscope.so (the hooks themselves).
    pub fn is_wrapper(&self, function: Option<&str>, module: Option<&str>) -> bool {
        if module.is_some_and(|m| m.ends_with("/libmemscope.so")) {
            return true;
        }
        function.is_some_and(|f| {
            let bare = without_return_type(f);
            self.matchers
                .iter()
                .any(|m| m.matches(f) || (bare.len() != f.len() && m.matches(bare)))
        })
    }

    /// The index of the first frame that is not a wrapper, in `frames`
    /// (function, module), innermost first; `frames.len()` when every
    /// frame is one. [`GLUE`] right after wrappers is skipped with them. An
    /// unnamed frame whose next named frame is a wrapper
    /// of the same module (a static helper between the allocator and the
    /// wrapper, like sqlite's `sqlite3MemMalloc`) belongs to that wrapper.
    pub fn caller_index(&self, frames: &[(Option<&str>, Option<&str>)]) -> usize {
        // Decided only for the frames looked at: most sites' caller is a
        // frame or two in, and a deep stack's outer frames never matter
        // (matching every frame of every site against every pattern was
        // most of `run`'s summary of a 10,000-site snapshot).
        let known: Vec<std::cell::Cell<Option<bool>>> = frames.iter().map(|_| Default::default()).collect();
        self.caller_index_by(frames, |i| {
            known[i].get().unwrap_or_else(|| {
                let w = self.is_wrapper(frames[i].0, frames[i].1);
                known[i].set(Some(w));
                w
            })
        })
    }

    /// [`Wrappers::caller_index`], with `wrapper(i)` telling whether frame
    /// `i` is a wrapper ([`Wrappers::is_wrapper`]): a caller naming many
    /// sites answers from what it found for their shared frames.
    pub fn caller_index_by(&self, frames: &[(Option<&str>, Option<&str>)], wrapper: impl Fn(usize) -> bool) -> usize {
        let glue = |f: Option<&str>| f.is_some_and(|f| GLUE.iter().any(|g| f.starts_with(g)));
        let mut i = 0;
        while i < frames.len() {
            if wrapper(i) || (i > 0 && glue(frames[i].0)) {
                i += 1;
                continue;
            }
            let (function, module) = frames[i];
            if function.is_some() || module.is_none() {
                return i;
            }
            let next_named = (i + 1..frames.len()).find(|&j| frames[j].0.is_some() || wrapper(j));
            match next_named {
                Some(j) if wrapper(j) && frames[j].1 == module => i = j,
                _ => return i,
            }
        }
        frames.len()
    }
}

/// A demangled C++ function template's name without its return type
/// (`void std::vector<int>::_M_realloc_insert<int>(…)` →
/// `std::vector<int>::_M_realloc_insert<int>(…)`), so patterns match the
/// qualified name; other names unchanged.
pub(crate) fn without_return_type(name: &str) -> &str {
    let mut depth = 0i32;
    let mut last_space = None;
    for (i, c) in name.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            '(' if depth == 0 => break,
            ' ' if depth == 0 => last_space = Some(i),
            _ => {}
        }
    }
    match last_space {
        Some(i) if !name[..i].ends_with("operator") => &name[i + 1..],
        _ => name,
    }
}
