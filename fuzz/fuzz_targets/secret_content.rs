//! Secret content rules (`guard::secrets`): the per-file content scan
//! (`ContentEngine::scan_with`, as the project scan runs it, with reused
//! per-thread scratch memory) and the redaction of a file's copy
//! (`secrets::redact::apply`). Every file of the project is hostile input.
//!
//! Invariants:
//! - no panic; findings are sorted, disjoint, inside the buffer, with the
//!   right line number and fingerprint; reusing scratch memory changes
//!   nothing;
//! - the redacted copy is the original with exactly the flagged ranges
//!   replaced by `guard-redacted:<rule>`;
//! - the redacted copy never contains the bytes the scanner flagged as a
//!   secret value (outside the markers' own text). Set
//!   GUARD_FUZZ_ALLOW_UNFLAGGED_COPIES=1 to tolerate a value that also
//!   occurs, unflagged, elsewhere in the file (found by this target; see
//!   fuzz/README.md).
#![no_main]

use guard::secrets::content_rules::{self, Scratch};
use guard::secrets::redact::{self, MARKER};
use guard::secrets::Rules;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::path::Path;
use std::sync::LazyLock;

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    Rules::new(
        &Default::default(),
        "builtin",
        Path::new("/home/u"),
        Path::new("/home/u/project"),
    )
    .expect("built-in rules")
});

static ALLOW_COPIES: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("GUARD_FUZZ_ALLOW_UNFLAGGED_COPIES").is_some_and(|v| v == "1"));

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let rules = &*RULES;
    let engine = &rules.content;
    // Binary files (a NUL in the first 8 KiB) are not scanned (scan.rs).
    if data[..data.len().min(8192)].contains(&0) {
        return;
    }
    let scan = SCRATCH
        .with(|s| engine.scan_with(data, &mut s.borrow_mut()))
        .expect("built-in rules compile");
    assert_eq!(
        engine.scan(data).expect("scan"),
        scan,
        "reused scratch memory changed the result"
    );

    let mut prev_end = 0usize;
    for f in &scan.findings {
        let (s, e) = (f.start as usize, f.end as usize);
        assert!(s >= prev_end, "findings overlap or are unsorted: {:?}", scan.findings);
        assert!(s <= e && e <= data.len(), "finding out of bounds: {f:?}");
        assert!((f.rule as usize) < engine.rules().len(), "unknown rule {f:?}");
        let line = 1 + data[..s].iter().filter(|&&b| b == b'\n').count() as u32;
        assert_eq!(f.line, line, "wrong line for {f:?}");
        assert_eq!(f.fingerprint, content_rules::fingerprint(&data[s..e]));
        prev_end = e;
    }
    if scan.findings.is_empty() {
        return;
    }
    let out = redact::apply(data, &scan.findings, engine);
    // Independent reconstruction.
    let mut expect = Vec::new();
    let mut at = 0;
    for f in &scan.findings {
        expect.extend_from_slice(&data[at..f.start as usize]);
        expect.extend_from_slice(MARKER.as_bytes());
        expect.extend_from_slice(engine.rule_id(f.rule).as_bytes());
        at = f.end as usize;
    }
    expect.extend_from_slice(&data[at..]);
    assert!(out == expect, "redacted copy is not the original with the findings replaced");

    // No flagged value of 8 bytes or more survives in the copy the sandbox
    // reads (`redact_copies` also replaces the value's unflagged copies;
    // shorter values would match ordinary words). The markers' own public
    // text is removed before looking (a value may occur inside
    // "guard-redacted:<rule>").
    let copy = redact::redact_copies(data, out, &scan.findings, engine);
    let mut stripped = copy.clone();
    for f in &scan.findings {
        let marker = [MARKER.as_bytes(), engine.rule_id(f.rule).as_bytes()].concat();
        while let Some(p) = find(&stripped, &marker) {
            stripped.splice(p..p + marker.len(), [0u8]);
        }
    }
    for f in &scan.findings {
        let value = &data[f.start as usize..f.end as usize];
        if value.len() < 8 || value.contains(&0) {
            continue;
        }
        if let Some(at) = find(&stripped, value) {
            if *ALLOW_COPIES {
                continue;
            }
            panic!(
                "redacted copy still holds the value flagged by rule {:?} (line {}, bytes {}..{}, {} bytes) at byte {at} of the copy",
                engine.rule_id(f.rule),
                f.line,
                f.start,
                f.end,
                value.len(),
            );
        }
    }
});
