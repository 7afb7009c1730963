//! Before starting anything: can libmemscope.so reach this command at all?
//! A missing command, a statically linked program (no `PT_INTERP`: no
//! dynamic loader, so nothing reads `LD_PRELOAD`), a program for another
//! architecture, and a set-user-ID or file-capability program (the kernel
//! runs it in secure-execution mode, where the loader ignores a preload
//! given by path) are each refused with one clear line.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Finds `cmd` as `execvp` would: a name with a `/` is a path, anything
/// else is searched in `PATH`.
pub fn resolve(cmd: &OsStr) -> Result<PathBuf, String> {
    let shown = crate::text::term(&cmd.to_string_lossy());
    if cmd.is_empty() {
        return Err("the command is empty".into());
    }
    if cmd.as_bytes().contains(&b'/') {
        let p = PathBuf::from(cmd);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(format!("{shown} is a directory, not a program")),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(format!("{shown} is not executable")),
            Ok(_) => Ok(p),
            Err(e) => Err(format!("command not found: {shown} ({})", crate::load::io_reason(&e))),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut not_executable = None;
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let p = dir.join(cmd);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
            not_executable.get_or_insert(p);
        }
    }
    match not_executable {
        Some(p) => Err(format!(
            "{} is not executable",
            crate::text::term(&p.display().to_string())
        )),
        None => Err(format!("command not found: {shown} (not in PATH)")),
    }
}

/// ELF facts that decide whether the preload can work.
#[derive(Debug, PartialEq, Eq)]
pub struct Elf {
    pub class64: bool,
    pub machine: u16,
    pub has_interp: bool,
}

/// Parses just enough of an ELF header and program headers.
pub fn parse_elf(data: &[u8]) -> Option<Elf> {
    if data.len() < 52 || &data[..4] != b"\x7fELF" {
        return None;
    }
    let class64 = match data[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match data[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |o: usize| -> Option<u16> {
        let b: [u8; 2] = data.get(o..o.checked_add(2)?)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(o..o.checked_add(4)?)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = data.get(o..o.checked_add(8)?)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let machine = u16_at(18)?;
    let (phoff, phentsize, phnum) = if class64 {
        (u64_at(32)?, u16_at(54)?, u16_at(56)?)
    } else {
        (u32_at(28)? as u64, u16_at(42)?, u16_at(44)?)
    };
    const PT_INTERP: u32 = 3;
    let mut has_interp = false;
    for i in 0..phnum as u64 {
        let off = usize::try_from(phoff.checked_add(i.checked_mul(phentsize as u64)?)?).ok()?;
        if u32_at(off)? == PT_INTERP {
            has_interp = true;
        }
    }
    Some(Elf {
        class64,
        machine,
        has_interp,
    })
}

/// The first 64 KiB of a file: enough for the ELF header and program
/// headers of any ordinary program, or a `#!` line.
fn head(p: &Path) -> Result<Vec<u8>, String> {
    let mut f = std::fs::File::open(p).map_err(|e| {
        format!(
            "cannot read {}: {}",
            crate::text::term(&p.display().to_string()),
            crate::load::io_reason(&e)
        )
    })?;
    let mut buf = Vec::new();
    f.by_ref().take(64 << 10).read_to_end(&mut buf).map_err(|e| {
        format!(
            "cannot read {}: {}",
            crate::text::term(&p.display().to_string()),
            crate::load::io_reason(&e)
        )
    })?;
    Ok(buf)
}

/// Refuses a program libmemscope.so cannot reach. `lib` is the library's
/// own ELF header, to compare architectures. Scripts are followed to their
/// interpreter (as the kernel does, up to 4 levels).
pub fn check(program: &Path, lib: &Elf) -> Result<(), String> {
    let mut p = program.to_path_buf();
    for _ in 0..5 {
        secure_execution(&p)?;
        let data = head(&p)?;
        let shown = crate::text::term(&p.display().to_string());
        if let Some(line) = data.strip_prefix(b"#!") {
            let line = line.split(|&b| b == b'\n').next().unwrap_or(&[]);
            let interp = line
                .split(|b| b.is_ascii_whitespace())
                .find(|w| !w.is_empty())
                .ok_or_else(|| format!("{shown} starts with #! but names no interpreter"))?;
            p = PathBuf::from(OsStr::from_bytes(interp));
            continue;
        }
        let Some(elf) = parse_elf(&data) else {
            // Not ELF and not a script: execvp would hand it to /bin/sh.
            return Ok(());
        };
        let via = if p != program {
            format!(
                "{} is run by {shown}, which",
                crate::text::term(&program.display().to_string())
            )
        } else {
            shown.clone()
        };
        if !elf.has_interp {
            return Err(format!(
                "{via} is statically linked: it has no dynamic loader, so LD_PRELOAD (and memscope) cannot reach its allocations"
            ));
        }
        if elf.class64 != lib.class64 || elf.machine != lib.machine {
            return Err(format!(
                "{via} is built for another architecture ({}-bit, machine {}) than libmemscope.so ({}-bit, machine {})",
                if elf.class64 { 64 } else { 32 },
                elf.machine,
                if lib.class64 { 64 } else { 32 },
                lib.machine
            ));
        }
        return Ok(());
    }
    Err(format!(
        "{}: too many levels of #! interpreters",
        crate::text::term(&program.display().to_string())
    ))
}

/// Reads the library's own ELF header.
pub fn library_elf(lib: &Path) -> Result<Elf, String> {
    parse_elf(&head(lib)?).ok_or_else(|| {
        format!(
            "{} is not an ELF shared library",
            crate::text::term(&lib.display().to_string())
        )
    })
}

/// Secure execution (AT_SECURE): the program gains privileges at exec —
/// set-user-ID or set-group-ID to someone we are not, or file capabilities.
fn secure_execution(p: &Path) -> Result<(), String> {
    let Ok(m) = std::fs::metadata(p) else {
        return Ok(());
    };
    // SAFETY: plain getters without arguments.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let why = if m.mode() & libc::S_ISUID != 0 && m.uid() != uid {
        Some(format!("set-user-ID (it runs as uid {})", m.uid()))
    } else if m.mode() & libc::S_ISGID != 0 && m.gid() != gid {
        Some(format!("set-group-ID (it runs as gid {})", m.gid()))
    } else if has_file_capabilities(p) {
        Some("given file capabilities (see getcap)".to_string())
    } else {
        None
    };
    match why {
        Some(why) => Err(format!(
            "{} is {why}: the kernel starts it in secure-execution mode, where the dynamic loader ignores LD_PRELOAD, \
             so memscope cannot trace it; trace a copy without the privilege instead",
            crate::text::term(&p.display().to_string())
        )),
        None => Ok(()),
    }
}

fn has_file_capabilities(p: &Path) -> bool {
    let Ok(path) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid C strings; a null buffer of size 0 asks for the size only.
    let n = unsafe { libc::getxattr(path.as_ptr(), c"security.capability".as_ptr(), std::ptr::null_mut(), 0) };
    n > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_dynamic() {
        let exe = std::env::current_exe().unwrap();
        let elf = parse_elf(&head(&exe).unwrap()).unwrap();
        assert!(elf.has_interp && elf.class64 == cfg!(target_pointer_width = "64"));
        assert!(check(&exe, &elf).is_ok());
    }

    #[test]
    fn garbage_is_not_elf() {
        assert_eq!(parse_elf(b"hello"), None);
        let mut h = b"\x7fELF\x02\x01".to_vec();
        h.resize(64, 0xff);
        assert_eq!(parse_elf(&h), None, "absurd program header offsets are rejected");
    }

    #[test]
    fn resolving_follows_path() {
        // The same file the shell finds on the same PATH.
        let shell = std::process::Command::new("sh")
            .args(["-c", "command -v sh"])
            .output()
            .unwrap();
        let found = String::from_utf8(shell.stdout).unwrap();
        assert!(found.starts_with('/'), "{found:?}");
        assert_eq!(resolve(OsStr::new("sh")).unwrap(), PathBuf::from(found.trim_end()));
        assert!(resolve(OsStr::new("surely-no-such-command-xyz"))
            .unwrap_err()
            .contains("command not found"));
        assert!(resolve(OsStr::new("/")).unwrap_err().contains("directory"));
    }
}
