fn main() {
    println!("cargo:rerun-if-changed=csrc/execl.c");
    cc::Build::new()
        .file("csrc/execl.c")
        .warnings(true)
        .compile("memscope_execl");
}
