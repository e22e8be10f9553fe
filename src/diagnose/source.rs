//! Reading the source a trace names, safely. A trace's `filename` is
//! untrusted (it may have come over the network through `pss serve`), and
//! what is read ends up in documents and in the prompt sent to an LLM
//! provider: a file is read only when it resolves — symlinks followed —
//! inside the configured source root, is a regular file under the size cap,
//! and has an allowed extension. A refusal is a reason, never the file's
//! contents.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Where source files may be read from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePolicy {
    /// The root; `None` reads nothing (the default for history diagnoses).
    pub root: Option<PathBuf>,
    /// Allowed extensions, without the dot (default `py`).
    pub extensions: Vec<String>,
    /// Larger files are not read.
    pub max_bytes: u64,
}

impl SourcePolicy {
    /// pss's defaults: `.py` files up to 1 MiB under `root`.
    pub fn under(root: Option<PathBuf>) -> SourcePolicy {
        SourcePolicy { root, extensions: vec!["py".into()], max_bytes: 1 << 20 }
    }

    /// The policy of a configuration: the root is `flag` (`--source-root`),
    /// else the config's `source_root`, else `fallback`.
    pub fn from_config(cfg: &Config, flag: Option<PathBuf>, fallback: Option<PathBuf>) -> SourcePolicy {
        let d = SourcePolicy::under(None);
        let k = &cfg.keys;
        SourcePolicy {
            root: flag.or_else(|| k.source_root.as_ref().map(PathBuf::from)).or(fallback),
            extensions: k
                .source_extensions
                .as_ref()
                .map(|v| v.iter().map(|e| e.trim_start_matches('.').to_string()).collect())
                .unwrap_or(d.extensions),
            max_bytes: k.source_max_bytes.map_or(d.max_bytes, |n| n.max(0) as u64),
        }
    }
}

/// Why a source file was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no source root is configured (set source_root in the config, or --source-root)")]
    NoRoot,
    #[error("the source root {0} does not exist")]
    BadRoot(String),
    #[error("outside the source root")]
    OutsideRoot,
    #[error("not a regular file")]
    NotAFile,
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("extension not allowed (allowed: {0})")]
    Extension(String),
    #[error("not readable here ({0})")]
    Unreadable(String),
}

impl SourcePolicy {
    /// The text of `filename` (relative names are under the root), or why not.
    pub fn read(&self, filename: &str) -> Result<String, Refused> {
        let root = self.root.as_ref().ok_or(Refused::NoRoot)?;
        let root = root.canonicalize().map_err(|_| Refused::BadRoot(root.display().to_string()))?;
        let asked = Path::new(filename);
        let joined = if asked.is_absolute() { asked.to_path_buf() } else { root.join(asked) };
        // Resolve `..` and every symlink first, then check: a link that
        // leaves the root is outside it. A missing file says only that.
        let real = joined.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Refused::Unreadable("no such file".into()),
            _ => Refused::Unreadable(e.kind().to_string()),
        })?;
        if !real.starts_with(&root) {
            return Err(Refused::OutsideRoot);
        }
        let ext = real.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !self.extensions.iter().any(|a| a.eq_ignore_ascii_case(ext)) {
            let allowed = self.extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ");
            return Err(Refused::Extension(allowed));
        }
        let file = std::fs::File::open(&real).map_err(|e| Refused::Unreadable(e.kind().to_string()))?;
        let meta = file.metadata().map_err(|e| Refused::Unreadable(e.kind().to_string()))?;
        if !meta.is_file() {
            return Err(Refused::NotAFile);
        }
        if meta.len() > self.max_bytes {
            return Err(Refused::TooLarge(self.max_bytes));
        }
        // Read at most the cap even if the file grew since.
        let mut text = String::new();
        file.take(self.max_bytes + 1)
            .read_to_string(&mut text)
            .map_err(|e| Refused::Unreadable(e.kind().to_string()))?;
        if text.len() as u64 > self.max_bytes {
            return Err(Refused::TooLarge(self.max_bytes));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_refuses_outside_links_escapes_and_others() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(root.join("pkg/ok.py"), "def f():\n    pass\n").unwrap();
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        std::fs::write(root.join("big.py"), "#".repeat(2000)).unwrap();
        let secret = dir.path().join("secret.py");
        std::fs::write(&secret, "TOKEN = 'hunter2'\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&secret, root.join("link.py")).unwrap();
        let p = SourcePolicy { max_bytes: 1000, ..SourcePolicy::under(Some(root.clone())) };
        assert!(p.read("pkg/ok.py").unwrap().starts_with("def f"));
        assert!(p.read(root.join("pkg/ok.py").to_str().unwrap()).is_ok(), "absolute inside the root");
        assert_eq!(p.read(secret.to_str().unwrap()), Err(Refused::OutsideRoot));
        assert_eq!(p.read("../secret.py"), Err(Refused::OutsideRoot));
        assert_eq!(p.read("pkg/../../secret.py"), Err(Refused::OutsideRoot));
        #[cfg(unix)]
        assert_eq!(p.read("link.py"), Err(Refused::OutsideRoot));
        assert_eq!(p.read("notes.txt"), Err(Refused::Extension(".py".into())));
        assert_eq!(p.read("big.py"), Err(Refused::TooLarge(1000)));
        assert_eq!(p.read("pkg"), Err(Refused::Extension(".py".into())));
        assert!(matches!(p.read("missing.py"), Err(Refused::Unreadable(_))));
        assert_eq!(SourcePolicy::under(None).read("pkg/ok.py"), Err(Refused::NoRoot));
    }

    #[test]
    fn a_directory_named_like_source_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d.py")).unwrap();
        let p = SourcePolicy::under(Some(dir.path().to_path_buf()));
        assert_eq!(p.read("d.py"), Err(Refused::NotAFile));
    }
}
