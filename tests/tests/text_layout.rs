//! The library's layout (preload/build.rs, preload/text_order.ld): the code
//! every short process image runs is packed at the start of its text. The
//! kernel maps 16 pages around each page of the library a process touches
//! and unmaps them at exit, so scattered, that code cost every traced
//! `/bin/true` ~160 µs more (scripts/bench/README.md).

use memscope_tests::*;
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

const REGENERATE: &str =
    "check preload/build.rs, or regenerate preload/text_order.ld: cargo build --release && python3 scripts/text_order.py";

#[test]
fn the_code_every_image_runs_is_packed_first_in_the_text() {
    let data = std::fs::read(lib_path()).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    let text = elf.section_by_name(".text").expect("a .text section");
    let end = elf
        .symbols()
        .find(|s| s.name() == Ok("__memscope_packed_end"))
        .unwrap_or_else(|| {
            panic!("libmemscope.so has no __memscope_packed_end: the link left text_order.ld out ({REGENERATE})")
        })
        .address();
    let packed = text.address()..end;
    assert!(
        end - text.address() >= 128 << 10 && end < text.address() + text.size(),
        "{} bytes packed of {} ({REGENERATE})",
        end - text.address(),
        text.size()
    );
    // What every image runs: the hooks, start-up, the snapshot at exit.
    let every_image = |name: &str| {
        matches!(
            name,
            "malloc" | "free" | "calloc" | "realloc" | "posix_memalign" | "execve" | "sigaction"
        ) || name.contains("13memscope_init")
            || name.contains("8Snapshot10write_json")
    };
    let mut placed = Vec::new();
    let mut elsewhere = Vec::new();
    for sym in elf.symbols().chain(elf.dynamic_symbols()) {
        let name = sym.name().unwrap_or("");
        if sym.kind() == SymbolKind::Text && every_image(name) {
            match packed.contains(&sym.address()) {
                true => placed.push(name.to_string()),
                false => elsewhere.push(name.to_string()),
            }
        }
    }
    assert!(
        elsewhere.is_empty(),
        "outside the packed code: {elsewhere:?} ({REGENERATE})"
    );
    for name in ["malloc", "free", "execve", "memscope_init", "write_json"] {
        assert!(
            placed.iter().any(|p| p.contains(name)),
            "{name} not found in the library: {placed:?}"
        );
    }
}
