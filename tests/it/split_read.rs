//! Files of 16 MiB and more are read by two threads: the second starts at a
//! guessed element boundary near the middle and its work is used only when
//! the first thread confirms the guess. These tests compare every such read
//! with the one-thread read of the same bytes through stdin.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pss"))
        .current_dir(dir)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        let mut w = child.stdin.take().unwrap();
        // pss stops reading at the first error: a closed pipe is expected then.
        let _ = w.write_all(bytes);
    }
    child.wait_with_output().unwrap()
}

/// Scores `bytes` from a file (split) and from stdin (sequential); both must
/// give the same report, or the same error.
fn same_both_ways(name: &str, bytes: &[u8], threads: u64) -> (Output, Output) {
    assert!(bytes.len() > 16 << 20, "{name}: test file must exceed the split threshold");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    let file = run(dir.path(), &["analyze", name, "--format", "json"], None);
    let pipe = run(dir.path(), &["analyze", "-", "--format", "json"], Some(bytes));
    assert_eq!(file.status.code(), pipe.status.code(), "{name}: {}", String::from_utf8_lossy(&file.stderr));
    if file.status.success() {
        let a: serde_json::Value = serde_json::from_slice(&file.stdout).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&pipe.stdout).unwrap();
        for key in ["pss", "breakdown", "modules", "traces", "skipped", "errors"] {
            assert_eq!(a[key], b[key], "{name}: {key}");
        }
        assert_eq!(a["files"][0]["threads"], serde_json::Value::from(threads), "{name}: threads used");
    } else {
        let fe = String::from_utf8_lossy(&file.stderr).replace(name, "<f>");
        let pe = String::from_utf8_lossy(&pipe.stderr).replace("<stdin>", "<f>");
        assert_eq!(fe, pe, "{name}: errors differ");
    }
    (file, pipe)
}

fn trace(i: usize, extra: &str) -> String {
    format!(
        "{{\n      \"trace_id\": \"{}.{}-{}\",\n      \"name\": \"f{}\",\n      \"module\": \"m{}\",\n      \"duration\": {},\n      \"wait_time\": {},\n      \"memory\": {},\n      \"error\": {},\n      \"branch_tag\": {}{}\n    }}",
        1_700_000_000 + i,
        i % 1000,
        i * 7 % 1_000_003,
        i % 13,
        i % 7,
        0.001 + (i % 97) as f64 * 0.0007,
        (i % 11) as f64 * 0.0003,
        1_000_000 + (i * 37) % 50_000,
        i.is_multiple_of(29),
        if i.is_multiple_of(3) { "null".to_string() } else { format!("\"b{}\"", i % 4) },
        extra
    )
}

fn array_file(n: usize, extra: impl Fn(usize) -> String) -> Vec<u8> {
    let items: Vec<String> = (0..n).map(|i| trace(i, &extra(i))).collect();
    format!("{{\n  \"overall\": {{}},\n  \"traces\": [\n    {}\n  ],\n  \"after\": [1, 2]\n}}\n", items.join(",\n    "))
        .into_bytes()
}

#[test]
fn json_array_split_equals_sequential() {
    let bytes = array_file(90_000, |_| String::new());
    same_both_ways("big.json", &bytes, 2);
}

#[test]
fn json_lines_split_equals_sequential() {
    let mut out = String::new();
    for i in 0..95_000 {
        out.push_str(&trace(i, "").replace('\n', ""));
        out.push('\n');
    }
    same_both_ways("big.jsonl", out.as_bytes(), 2);
}

#[test]
fn a_wrong_guess_is_thrown_away() {
    // Nested arrays of objects everywhere: the guessed boundary near the
    // middle is inside one of them, so the second thread's work must be dropped.
    let nested = |_: usize| {
        let spans: Vec<String> = (0..40).map(|k| format!("{{\"span\": {k}, \"x\": \"{{,{{\"}}")).collect();
        format!(",\n      \"spans\": [{}]", spans.join(",\n        "))
    };
    let bytes = array_file(14_000, nested);
    same_both_ways("nested.json", &bytes, 1);
}

#[test]
fn errors_in_the_second_half_name_the_same_line() {
    let mut bytes = array_file(90_000, |_| String::new());
    // Break a value three quarters into the file.
    let at = bytes.len() * 3 / 4;
    let pos = at + bytes[at..].windows(10).position(|w| w == b"\"duration\"").unwrap();
    bytes[pos + 12] = b'x';
    let (file, _) = same_both_ways("broken.json", &bytes, 2);
    let err = String::from_utf8_lossy(&file.stderr).to_string();
    let line = 1 + bytes[..pos].iter().filter(|&&b| b == b'\n').count();
    assert!(err.contains(&format!("broken.json:{line}:")), "expected line {line}: {err}");
}

#[test]
fn truncated_large_file_fails_cleanly() {
    let bytes = array_file(90_000, |_| String::new());
    let cut = &bytes[..bytes.len() - 200];
    let (file, _) = same_both_ways("cut.json", cut, 2);
    assert_eq!(file.status.code(), Some(2));
}
