//! The panic hook: notes the panic with the engine (a process that then
//! exits with Rust's panic status 101, or aborts, ends its snapshot as
//! `"panic"`) and hands over to the hook that was installed before.
//!
//! The previous hook lives in a static rather than in the new hook's closure:
//! the closure is then zero-sized and installing it allocates nothing (under
//! `LD_PRELOAD` the program's allocation counts must not change).

use std::panic::PanicHookInfo;
use std::sync::{Once, OnceLock};

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

static PREVIOUS: OnceLock<Hook> = OnceLock::new();

pub(crate) fn install() {
    static ONCE: Once = Once::new();
    // take_hook/set_hook panic on a panicking thread (init from a Drop
    // during unwinding): the hook is then simply not installed.
    if std::thread::panicking() {
        return;
    }
    ONCE.call_once(|| {
        let _ = PREVIOUS.set(std::panic::take_hook());
        std::panic::set_hook(Box::new(|info| {
            crate::backend::note_panic();
            if let Some(previous) = PREVIOUS.get() {
                previous(info);
            }
        }));
    });
}
