//! The classifier and the names on frames copied from real runs (sqlite3
//! 3.40, g++ 12 -O2 with std::vector, a cargo/rustup run, python3.11,
//! bash), so the patterns are checked against what symbolizers print.

use crate::names::{frame_label, naming, site_names, unique_names};
use crate::Wrappers;
use memscope_format::{Callsite, Frame, FrameTables, Snapshot};

/// Frames as (function or address, module): `0x…` is unnamed.
type Raw<'a> = &'a [(&'a str, &'a str)];

fn keys<'a>(raw: Raw<'a>) -> Vec<(Option<&'a str>, Option<&'a str>)> {
    raw.iter()
        .map(|&(f, m)| ((!f.starts_with("0x")).then_some(f), Some(m)))
        .collect()
}

fn caller(raw: Raw) -> usize {
    Wrappers::builtin().caller_index(&keys(raw))
}

const SQLITE_BTREE: Raw = &[
    ("0x7f07b2b48504", "/lib/libsqlite3.so.0"),
    ("sqlite3Malloc", "/lib/libsqlite3.so.0"),
    ("0x7f07b2ada74e", "/lib/libsqlite3.so.0"),
    ("0x7f07b2adc40e", "/lib/libsqlite3.so.0"),
    ("sqlite3BtreeInsert", "/lib/libsqlite3.so.0"),
    ("sqlite3VdbeExec", "/lib/libsqlite3.so.0"),
];

#[test]
fn an_unnamed_helper_before_a_wrapper_of_its_module_is_the_wrapper() {
    // sqlite3MemMalloc (static) ← sqlite3Malloc ← (static pager code) ← …
    assert_eq!(caller(SQLITE_BTREE), 2);
    // The same unnamed frame before a wrapper of another module is not.
    let other = [("0x1234", "/usr/bin/app"), ("sqlite3Malloc", "/lib/libsqlite3.so.0")];
    assert_eq!(caller(&other), 0);
    // …nor before a function that is no wrapper.
    let python = [
        ("0x4fb51c", "/usr/bin/python3.11"),
        ("PyByteArray_Resize", "/usr/bin/python3.11"),
    ];
    assert_eq!(caller(&python), 0);
}

#[test]
fn real_wrapper_stacks_skip_to_the_caller() {
    let cpp: Raw = &[
        ("operator new(unsigned long)", "/lib/libstdc++.so.6"),
        ("std::__new_allocator<int>::allocate(unsigned long, void const*)", "/w/vec"),
        ("std::allocator_traits<std::allocator<int> >::allocate(std::allocator<int>&, unsigned long)", "/w/vec"),
        ("std::_Vector_base<int, std::allocator<int> >::_M_allocate(unsigned long)", "/w/vec"),
        ("void std::vector<int, std::allocator<int> >::_M_realloc_insert<int>(__gnu_cxx::__normal_iterator<int*, std::vector<int, std::allocator<int> > >, int&&)", "/w/vec"),
        ("int& std::vector<int, std::allocator<int> >::emplace_back<int>(int&&)", "/w/vec"),
        ("std::vector<int, std::allocator<int> >::push_back(int&&)", "/w/vec"),
        ("load_rows", "/w/vec"),
        ("main", "/w/vec"),
    ];
    let rust: Raw = &[
        ("alloc::raw_vec::RawVecInner<A>::finish_grow", "/bin/cargo"),
        ("alloc::raw_vec::RawVec<T,A>::grow_one", "/bin/cargo"),
        ("regex_automata::nfa::thompson::nfa::Inner::add", "/bin/cargo"),
    ];
    let from_elem: Raw = &[
        (
            "<T as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
            "/bin/cargo",
        ),
        (
            "regex_automata::nfa::thompson::compiler::Utf8Compiler::new",
            "/bin/cargo",
        ),
    ];
    let openssl: Raw = &[
        ("CRYPTO_clear_realloc", "/bin/cargo"),
        ("BUF_MEM_grow_clean", "/bin/cargo"),
        ("tls_get_more_records", "/bin/cargo"),
    ];
    let python: Raw = &[
        ("0x62d1da", "/usr/bin/python3.11"),
        ("0x4fb720", "/usr/bin/python3.11"),
        ("_PyObject_GC_New", "/usr/bin/python3.11"),
        ("PyList_New", "/usr/bin/python3.11"),
    ];
    let bash: Raw = &[("xmalloc", "/usr/bin/bash"), ("hash_create", "/usr/bin/bash")];
    let llvm: Raw = &[
        ("llvm::allocate_buffer(unsigned long, unsigned long)", "/lib/libLLVM.so"),
        ("llvm::BumpPtrAllocatorImpl<llvm::MallocAllocator, (unsigned long)4096, (unsigned long)4096, (unsigned long)128>::AllocateSlow(unsigned long, unsigned long, llvm::Align)", "/bin/rust-lld"),
        ("lld::elf::InputSection::writeTo", "/bin/rust-lld"),
    ];
    let format: Raw = &[
        ("<alloc::string::String>::with_capacity", "/w/p"),
        ("alloc::fmt::format::format_inner", "/w/p"),
        ("alloc::fmt::format::{{closure}}", "/w/p"),
        ("core::option::Option<T>::map_or_else", "/w/p"),
        ("alloc::fmt::format", "/w/p"),
        ("site_names_rs::make_names::{{closure}}", "/w/p"),
        ("core::iter::adapters::map::map_fold::{{closure}}", "/w/p"),
    ];
    let collect: Raw = &[
        (
            "<alloc::vec::Vec<T> as core::iter::traits::collect::FromIterator<T>>::from_iter",
            "/w/p",
        ),
        ("core::iter::traits::iterator::Iterator::collect", "/w/p"),
        ("site_names_rs::make_names", "/w/p"),
    ];
    assert_eq!(caller(format), 5);
    assert_eq!(caller(collect), 2);
    // Glue is no wrapper where it starts a stack.
    assert_eq!(caller(&[("core::ptr::drop_in_place", "/w/p")]), 0);
    let glib: Raw = &[
        ("g_malloc0", "/lib/libglib-2.0.so.0"),
        ("g_hash_table_new_full", "/lib/libglib-2.0.so.0"),
    ];
    let hook: Raw = &[
        ("0x7f0000001000", "/opt/memscope/libmemscope.so"),
        ("malloc", "/opt/memscope/libmemscope.so"),
        ("main", "/a"),
    ];
    assert_eq!(caller(cpp), 7);
    assert_eq!(caller(rust), 2);
    assert_eq!(caller(from_elem), 1);
    assert_eq!(caller(openssl), 2);
    assert_eq!(caller(python), 3);
    assert_eq!(caller(bash), 1);
    assert_eq!(caller(llvm), 2);
    assert_eq!(caller(glib), 1);
    assert_eq!(caller(hook), 2);
    // Not wrappers: what a program's own code is called.
    let own: Raw = &[
        ("make_table", "/w/vec"),
        ("_IO_file_doallocate", "/lib/libc.so.6"),
        ("PyByteArray_Resize", "/usr/bin/python3"),
        ("xmlMalloc_user", "/a"),
    ];
    for one in own.chunks(1) {
        assert_eq!(caller(one), 0, "{one:?}");
    }
    // Every frame a wrapper: the index past the end.
    assert_eq!(
        caller(&[
            ("malloc", "/lib/libc.so.6"),
            ("operator new(unsigned long)", "/lib/libstdc++.so.6")
        ]),
        2
    );
}

#[test]
fn return_types_are_not_part_of_the_name() {
    use crate::wrappers::without_return_type as bare;
    assert_eq!(
        bare("int& std::vector<int, std::allocator<int> >::emplace_back<int>(int&&)"),
        "std::vector<int, std::allocator<int> >::emplace_back<int>(int&&)"
    );
    assert_eq!(bare("operator new(unsigned long)"), "operator new(unsigned long)");
    assert_eq!(bare("unsigned long f<int>(int)"), "f<int>(int)");
    assert_eq!(bare("load(std::vector<int> const&)"), "load(std::vector<int> const&)");
    assert_eq!(
        bare("alloc::raw_vec::RawVec<T,A>::grow_one"),
        "alloc::raw_vec::RawVec<T,A>::grow_one"
    );
}

#[test]
fn user_patterns_add_to_the_list_and_bad_ones_are_one_line() {
    let mine: Raw = &[("my_pool_alloc", "/a"), ("Arena::grow(int)", "/a"), ("load", "/a")];
    assert_eq!(caller(mine), 0);
    let w = Wrappers::with(&["my_pool_*", "Arena::grow(*)"]).unwrap();
    assert_eq!(w.caller_index(&keys(mine)), 2);
    let w = Wrappers::with(&["*_alloc", "Arena::gro?(int)"]).unwrap();
    assert_eq!(w.caller_index(&keys(mine)), 2);
    for bad in ["[abc", "a***", "", "  "] {
        let e = Wrappers::with(&[bad]).unwrap_err();
        assert!(!e.contains('\n') && e.contains("pattern"), "{bad:?}: {e}");
    }
    assert_eq!(
        Wrappers::split_env("my_alloc;;Arena::*; "),
        vec!["my_alloc".to_string(), "Arena::*".to_string()]
    );
}

/// A valid snapshot with no sites, backtraces off.
const MINIMAL: &str = r#"{"format":"memscope","format_version":2,"modules":[],"frames":[],
  "process":{"pid":42,"ppid":1,"exe":"/usr/bin/prog","argv":["prog"],"start_unix_ns":1000,
             "end_unix_ns":11000,"end":"exit","exit_code":0},
  "summary":{"total_allocations":0,"total_frees":0,"total_allocated_bytes":0,"total_freed_bytes":0,
             "reallocs":0,"peak_live_bytes":0,"peak_live_allocations":0,"peak_unix_ns":1000,
             "live_at_exit_allocations":0,"live_at_exit_bytes":0,"events_dropped":0,"records_omitted":0},
  "allocations":[],"callsites":[],"variables":[],"timeline":[]}"#;

fn snapshot(stacks: &[Vec<Frame>]) -> Snapshot {
    let mut s = memscope_format::read_snapshot(MINIMAL.as_bytes()).unwrap();
    let mut t = FrameTables::new();
    t.module("/usr/bin/prog");
    s.callsites = stacks
        .iter()
        .enumerate()
        .map(|(id, frames)| Callsite {
            id: id as u64 + 1,
            frames: frames.iter().map(|f| t.frame(f.clone())).collect(),
            allocations: 1,
            bytes: 8,
            live_at_exit_bytes: 0,
            peak_live_bytes: 8,
            lifetime_ns: Default::default(),
            live_at_exit_allocations: 0,
            reallocs: 0,
            at_peak_bytes: 0,
            at_peak_allocations: 0,
            peak_live_allocations: None,
        })
        .collect();
    t.install(&mut s);
    s
}

fn frame(ip: u64, function: Option<&str>, line: Option<u32>) -> Frame {
    Frame {
        ip: format!("0x{ip:x}"),
        function: function.map(String::from),
        file: line.map(|_| "/src/db.c".to_string()),
        line,
        module: 0,
        inlined: false,
    }
}

#[test]
fn names_are_the_caller_and_never_repeat() {
    let malloc = frame(1, Some("sqlite3Malloc"), None);
    let s = snapshot(&[
        // Same caller, same line, different callers further out.
        vec![
            malloc.clone(),
            frame(2, Some("insert"), Some(10)),
            frame(3, Some("load"), Some(5)),
        ],
        vec![
            malloc.clone(),
            frame(2, Some("insert"), Some(10)),
            frame(4, Some("save"), Some(8)),
        ],
        // Same caller, another line: the line tells them apart.
        vec![
            malloc.clone(),
            frame(5, Some("insert"), Some(12)),
            frame(3, Some("load"), Some(5)),
        ],
        // Identical names all the way out: the site id does.
        vec![malloc.clone(), frame(6, None, None), frame(7, Some("open"), None)],
        vec![malloc.clone(), frame(8, None, None), frame(7, Some("open"), None)],
        vec![],
    ]);
    let names: Vec<String> = site_names(&s, &Wrappers::builtin())
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        names,
        [
            "insert (db.c:10) ← load (db.c:5)",
            "insert (db.c:10) ← save (db.c:8)",
            "insert (db.c:12)",
            "open (in prog) [site 4]",
            "open (in prog) [site 5]",
            "(no backtrace: run with --backtrace N to see sites)",
        ]
    );
    let n = naming(&s, &s.callsites[3], &Wrappers::builtin());
    assert_eq!(
        (n.caller, n.parts.len()),
        (1, 1),
        "the unnamed caller is shown, named by its caller"
    );
    assert_eq!(
        frame_label(&malloc, Some("/lib/libsqlite3.so.0")),
        "sqlite3Malloc (in libsqlite3.so.0)"
    );
}

#[test]
fn naming_many_sites_at_once_finds_what_naming_each_alone_does() {
    // Sites sharing frames (the wrapper, a caller) in different places:
    // the per-frame answers `site_names` keeps for all sites must not
    // change any site's caller or parts.
    let malloc = frame(1, Some("sqlite3Malloc"), None);
    let insert = frame(2, Some("insert"), Some(10));
    let helper = frame(6, None, None);
    let s = snapshot(&[
        vec![malloc.clone(), insert.clone(), frame(3, Some("load"), Some(5))],
        vec![insert.clone(), malloc.clone(), frame(4, Some("save"), Some(8))],
        vec![helper.clone(), malloc.clone(), insert.clone()],
        vec![malloc.clone(), helper.clone(), frame(7, Some("open"), None)],
        vec![malloc.clone(), malloc.clone()],
        vec![],
    ]);
    let w = Wrappers::builtin();
    let together = site_names(&s, &w);
    for (c, (caller, name)) in s.callsites.iter().zip(&together) {
        let alone = naming(&s, c, &w);
        assert_eq!(*caller, alone.caller, "site {}", c.id);
        if let Some(first) = alone.parts.first() {
            assert!(name.starts_with(first.as_str()), "site {}: {name} vs {first}", c.id);
        }
    }
    assert_eq!(together[0].0, 1, "the wrapper is skipped");
    assert_eq!(together[1].0, 0, "a wrapper further out changes nothing");
}

#[test]
fn unique_names_grow_only_where_needed() {
    let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let tags: Vec<String> = (0..3).map(|i| format!("#{i}")).collect();
    let got = unique_names(&[p(&["a", "b", "c"]), p(&["a", "b", "d"]), p(&["x", "y"])], &tags);
    assert_eq!(got, ["a [#0]", "a [#1]", "x"]);
    let got = unique_names(&[p(&["a", "b"]), p(&["a"]), p(&["a", "e"])], &tags);
    assert_eq!(got, ["a ← b", "a", "a ← e"]);
}

#[test]
fn the_readme_lists_every_built_in_pattern() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let list = readme
        .split("### Site names")
        .nth(1)
        .expect("README has a \"Site names\" section");
    for (family, patterns) in crate::BUILTIN {
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("- {family}: ")))
            .unwrap_or_else(|| panic!("README lists no {family} wrappers"));
        let listed: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        assert_eq!(&listed, patterns, "README's {family} wrappers");
    }
}

#[test]
fn names_by_label_numbers_are_the_names_unique_names_gives() {
    // Random stacks over a small pool of frames, so that names collide in
    // every way: the same label from two frames (a function without a line
    // at two addresses), equal first and second parts, unnamed frames,
    // wrappers, empty stacks.
    let pool: Vec<Frame> = vec![
        frame(1, Some("sqlite3Malloc"), None),
        frame(2, Some("insert"), Some(10)),
        frame(3, Some("insert"), Some(10)),
        frame(4, Some("load"), None),
        frame(5, Some("load"), None),
        frame(6, None, None),
        frame(7, Some("save"), Some(8)),
        frame(8, Some("xmalloc"), None),
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n) as usize
    };
    let w = Wrappers::builtin();
    for _ in 0..300 {
        let stacks: Vec<Vec<Frame>> = (0..1 + next(12))
            .map(|_| (0..next(5)).map(|_| pool[next(pool.len() as u64)].clone()).collect())
            .collect();
        let s = snapshot(&stacks);
        let (by_label, by_text) = crate::names::both_ways(&s, &w);
        assert_eq!(by_label.as_ref(), Some(&by_text), "stacks {stacks:?}");
        let named: Vec<String> = site_names(&s, &w).into_iter().map(|(_, n)| n).collect();
        assert_eq!(named, by_text);
    }
    // A label that could read as two parts, or as a tag, and two sites of
    // one id: the general way names them.
    for odd in ["a ← b", "f [site 1]"] {
        let s = snapshot(&[
            vec![frame(1, Some(odd), None)],
            vec![frame(2, Some("a"), None), frame(3, Some("b"), None)],
            vec![frame(4, Some("a"), None), frame(5, Some("c"), None)],
        ]);
        let (by_label, by_text) = crate::names::both_ways(&s, &w);
        assert_eq!(by_label, None, "{odd}");
        let named: Vec<String> = site_names(&s, &w).into_iter().map(|(_, n)| n).collect();
        assert_eq!(named, by_text);
    }
    let mut s = snapshot(&[vec![frame(1, Some("f"), None)], vec![frame(2, Some("f"), None)]]);
    s.callsites[1].id = s.callsites[0].id;
    assert_eq!(crate::names::both_ways(&s, &w).0, None, "two sites of one id");
}
