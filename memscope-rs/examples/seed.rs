//! The usage example from the original request, as written there (the
//! `use` line brings the macro into scope; `#[macro_use] extern crate
//! memscope_rs;` does the same). Its snapshot goes to
//! `my_memory_analysis.json`, where `my_vec` has an exact lifetime.
#![allow(unused_variables)]
use memscope_rs::track_var;

fn main() {
    // 初始化并启用自动导出
    memscope_rs::init();
    memscope_rs::enable_auto_export(Some("my_memory_analysis.json"));

    // 使用 track_var! 宏跟踪变量
    let my_vec = vec![1, 2, 3];
    let tracked_vec = track_var!(my_vec);

    // 程序结束时会自动导出内存分析数据，包含准确的生命周期信息
}
