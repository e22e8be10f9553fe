//! The HTML documents as a person sees them: a diagnosis and an analyze
//! report rendered by Debian's headless Chromium to PNG (installed by
//! scripts/test.sh), checked to have rendered — the expected size, and far
//! more drawn than a blank page of the same size (a control).

use std::path::Path;
use std::process::Command;

use crate::common::{ok, pss, repo, shipped_history};

/// Renders `html` to a PNG of 1000×1400; returns (width, height, bytes).
fn render(dir: &Path, html: &Path, png: &str) -> (u32, u32, usize) {
    let out = dir.join(png);
    let status = Command::new("/usr/bin/chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1400"])
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("Debian's chromium is installed (scripts/test.sh installs it)");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let be = |k: usize| u32::from_be_bytes(bytes[k..k + 4].try_into().unwrap());
    (be(16), be(20), bytes.len())
}

#[test]
fn a_diagnosis_and_an_analyze_report_render_in_chromium() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    shipped_history(d, &["checkout"]);
    ok(&pss(d, &["diagnose", "--history", "h.db", "--incident", "checkout-3", "--format", "html", "-o", "diag.html"]));
    let sample = repo("datasets/sample-traces.json");
    ok(&pss(d, &["analyze", sample.to_str().unwrap(), "--format", "html", "-o", "report.html"]));
    std::fs::write(d.join("blank.html"), "<!doctype html><title>blank</title>").unwrap();
    let blank = render(d, &d.join("blank.html"), "blank.png");
    assert_eq!((blank.0, blank.1), (1000, 1400));
    for (html, png) in [("diag.html", "diag.png"), ("report.html", "report.png")] {
        let (w, h, size) = render(d, &d.join(html), png);
        assert_eq!((w, h), (1000, 1400), "{html}");
        assert!(size > 5 * blank.2, "{html} rendered {size} bytes of PNG, a blank page {}", blank.2);
    }
    // The diagnosis reads as a person expects: clock-time axis, human durations, no emoji.
    let doc = std::fs::read_to_string(d.join("diag.html")).unwrap();
    assert!(doc.contains("time (UTC)") && !doc.contains("hours from"), "clock-time axis");
    assert!(!doc.contains('🔥') && !doc.contains('⚠') && !doc.contains('✅'), "no emoji glyphs");
    // No raw floats such as "18.610000133514404s" in the text (the SVG's
    // own coordinates and font sizes aside): six or more digits after a point.
    let mut text = doc.clone();
    while let (Some(a), Some(z)) = (text.find("<svg"), text.find("</svg>")) {
        text.replace_range(a..z + 6, "");
    }
    let b = text.as_bytes();
    let raw = (0..b.len().saturating_sub(7)).any(|k| b[k] == b'.' && b[k + 1..k + 7].iter().all(u8::is_ascii_digit));
    assert!(!raw, "a raw float in the diagnosis");
}
