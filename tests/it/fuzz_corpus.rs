//! Every committed fuzzing corpus (`fuzz/corpus/<target>/`, seeds and the inputs of past findings)
//! replayed through the same harness the cargo-fuzz target runs, on the stable toolchain: a finding
//! once fixed stays fixed.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_passes_its_harness() {
    let mut failures = Vec::new();
    for (target, harness) in yunid::fuzzing::TARGETS {
        let files = corpus(target);
        assert!(
            files.len() >= 3,
            "{target}: a seed corpus of at least three inputs"
        );
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "harnesses failed on {failures:?}");
}

#[test]
fn every_fuzz_target_has_a_harness_and_a_corpus() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml")).unwrap();
    for (target, _) in yunid::fuzzing::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "no cargo-fuzz target {target}"
        );
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz/fuzz_targets/{target}.rs"));
        let text = std::fs::read_to_string(&source).unwrap();
        assert!(
            text.contains(&format!("yunid::fuzzing::{target}(")),
            "{}",
            source.display()
        );
    }
}

#[test]
fn the_webauthn_seeds_include_answers_that_parse() {
    let files = corpus("webauthn_json");
    let parses = |f: &dyn Fn(&[u8]) -> bool| files.iter().any(|p| f(&std::fs::read(p).unwrap()));
    assert!(parses(&|d| serde_json::from_slice::<
        webauthn_rs_proto::PublicKeyCredential,
    >(d)
    .is_ok()));
    assert!(parses(&|d| serde_json::from_slice::<
        webauthn_rs_proto::RegisterPublicKeyCredential,
    >(d)
    .is_ok()));
}
