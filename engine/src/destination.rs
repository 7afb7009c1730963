//! Where this image's snapshots go (SPEC §2): `MEMSCOPE_EXPORT_PATH`, or the
//! path the program set (memscope-rs's `enable_auto_export`), expanded for
//! this image.

use crate::config;
use crate::lock::Locked;
use crate::process::ProcessInfo;
use crate::thread::Guard;

/// The default path set by the program (memscope-rs's `enable_auto_export`),
/// used when `MEMSCOPE_EXPORT_PATH` is not set. Locked across `fork()` by
/// the fork handlers.
pub(crate) static PROGRAM_PATH: Locked<Option<String>> = Locked::new(None);

pub fn set_program_export_path(path: &str) {
    let _g = Guard::enter();
    PROGRAM_PATH.with(|p| *p = Some(path.to_string()));
}

/// Where this image's snapshot goes.
pub fn snapshot_path(process: &ProcessInfo) -> String {
    snapshot_path_with(process, None)
}

/// [`snapshot_path`], or the same rules applied to `template` when given.
pub fn snapshot_path_with(process: &ProcessInfo, template: Option<&str>) -> String {
    let cfg = config::get();
    let template = match (template, PROGRAM_PATH.with(|p| p.clone())) {
        (Some(t), _) => t.to_string(),
        (None, Some(p)) if !cfg.export_path_from_env => p,
        _ => cfg.export_path.clone(),
    };
    let image = crate::paths::Image {
        pid: process.pid,
        exe_name: process.exe_name(),
        exec_seq: process.exec_seq,
        is_root: process.is_root,
    };
    crate::paths::absolute(&crate::paths::expand(&template, &image), &process.cwd)
}
