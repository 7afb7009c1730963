//! Where a snapshot goes (SPEC §2): `%p`/`%e` expansion and the rules that
//! keep every process image's snapshot in its own file.

/// Who is writing: enough to name its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image<'a> {
    pub pid: u32,
    /// Base name of the executable.
    pub exe_name: &'a str,
    /// Number of `exec`s this pid went through before this image.
    pub exec_seq: u32,
    /// The run's first image (first process, before any exec).
    pub is_root: bool,
}

/// Expands `template` for `image`:
/// - `%p` becomes the pid, or `<pid>-<n>` for the n-th exec'd image of a pid;
/// - `%e` the executable's base name, `%%` a `%`;
/// - without `%p`, every image but the run's root inserts `.<pid>` (or
///   `.<pid>-<n>`) before the extension.
pub fn expand(template: &str, image: &Image) -> String {
    let pid = if image.exec_seq == 0 {
        image.pid.to_string()
    } else {
        format!("{}-{}", image.pid, image.exec_seq)
    };
    let mut out = String::with_capacity(template.len() + 16);
    let mut has_pid = false;
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('p') => {
                has_pid = true;
                out.push_str(&pid);
            }
            Some('e') => out.push_str(&sanitize(image.exe_name)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    if has_pid || (image.is_root && image.exec_seq == 0) {
        return out;
    }
    insert_before_extension(&out, &format!(".{pid}"))
}

/// `dir/name.ext` → `dir/name<tag>.ext`; `dir/name` → `dir/name<tag>`.
pub fn insert_before_extension(path: &str, tag: &str) -> String {
    let file_start = path.rfind('/').map(|i| i + 1).unwrap_or(0);
    match path[file_start..].rfind('.') {
        Some(dot) if dot > 0 => {
            let at = file_start + dot;
            format!("{}{}{}", &path[..at], tag, &path[at..])
        }
        _ => format!("{path}{tag}"),
    }
}

/// Replaces the extension (or appends one): `a/b.json` → `a/b.html`.
pub fn with_extension(path: &str, ext: &str) -> String {
    let file_start = path.rfind('/').map(|i| i + 1).unwrap_or(0);
    match path[file_start..].rfind('.') {
        Some(dot) if dot > 0 => format!("{}.{}", &path[..file_start + dot], ext),
        _ => format!("{path}.{ext}"),
    }
}

/// An executable name cannot inject directories into the path.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    match s.as_str() {
        "" | "." | ".." => "unknown".to_string(),
        _ => s,
    }
}

/// Makes a relative path absolute against the start-up directory.
pub fn absolute(path: &str, cwd: &str) -> String {
    if path.starts_with('/') || cwd.is_empty() {
        path.to_string()
    } else {
        format!("{}/{}", cwd.trim_end_matches('/'), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(pid: u32, exec_seq: u32, is_root: bool) -> Image<'static> {
        Image {
            pid,
            exe_name: "prog",
            exec_seq,
            is_root,
        }
    }

    #[test]
    fn percent_p_and_e() {
        assert_eq!(
            expand("memscope-%e-%p.json", &img(42, 0, true)),
            "memscope-prog-42.json"
        );
        assert_eq!(
            expand("memscope-%e-%p.json", &img(42, 0, false)),
            "memscope-prog-42.json"
        );
        assert_eq!(expand("out-%p.json", &img(42, 2, false)), "out-42-2.json");
        assert_eq!(expand("100%%-%p", &img(7, 0, true)), "100%-7");
        assert_eq!(expand("odd%x%", &img(7, 0, true)), "odd%x%");
    }

    #[test]
    fn without_percent_p_only_the_root_gets_the_plain_path() {
        assert_eq!(expand("/tmp/out.json", &img(42, 0, true)), "/tmp/out.json");
        assert_eq!(expand("/tmp/out.json", &img(43, 0, false)), "/tmp/out.43.json");
        assert_eq!(expand("/tmp/out.json", &img(42, 1, true)), "/tmp/out.42-1.json");
        assert_eq!(expand("/tmp/out.json", &img(43, 3, false)), "/tmp/out.43-3.json");
        assert_eq!(expand("/tmp.d/out", &img(43, 0, false)), "/tmp.d/out.43");
        assert_eq!(expand(".hidden", &img(43, 0, false)), ".hidden.43");
    }

    #[test]
    fn exe_names_cannot_escape() {
        let i = Image {
            pid: 1,
            exe_name: "../../etc/x",
            exec_seq: 0,
            is_root: true,
        };
        assert_eq!(expand("/tmp/%e.json", &i), "/tmp/.._.._etc_x.json");
        let i = Image {
            pid: 1,
            exe_name: "..",
            exec_seq: 0,
            is_root: true,
        };
        assert_eq!(expand("/tmp/%e.json", &i), "/tmp/unknown.json");
    }

    #[test]
    fn extensions_and_absolute() {
        assert_eq!(with_extension("/a/b.json", "html"), "/a/b.html");
        assert_eq!(with_extension("/a.d/b", "html"), "/a.d/b.html");
        assert_eq!(absolute("x.json", "/home/u"), "/home/u/x.json");
        assert_eq!(absolute("/x.json", "/home/u"), "/x.json");
    }
}
