//! The tools some tests drive — Node.js, Debian's Chromium and CJK fonts, the pinned npm packages
//! (playwright-core, openid-client) and Python tools (openapi-spec-validator, schemathesis, authlib) —
//! are installed by `scripts/test`. Without them, `cargo test` stops at its first integration test and
//! names that command, instead of failing eight tests ten minutes later.
//! `YUNID_TEST_WITHOUT_TOOLS=1` runs on, and the tests that need a missing tool fail on their own.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;

/// The one command that installs what the tests need and runs them all.
pub const INSTALL: &str = "scripts/test";

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn chromium() -> PathBuf {
    std::env::var_os("YUNID_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn interop_dir() -> PathBuf {
    std::env::var_os("YUNID_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("yunid-interop"))
}

/// What is missing, by name.
pub fn missing() -> Vec<&'static str> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let interop = interop_dir();
    let cjk_fonts = Command::new("fc-list")
        .arg(":lang=zh")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    [
        ("node", runs("node", &["--version"])),
        ("chromium", chromium().exists()),
        ("fonts-noto-cjk", cjk_fonts),
        (
            "playwright-core (tests/browser)",
            root.join("tests/browser/node_modules/playwright-core/package.json")
                .exists(),
        ),
        (
            "openid-client (tests/interop)",
            interop
                .join("node/node_modules/openid-client/package.json")
                .exists(),
        ),
        (
            "oidc-provider (tests/interop)",
            interop
                .join("node/node_modules/oidc-provider/package.json")
                .exists(),
        ),
        (
            "authlib (tests/interop)",
            interop.join("python/authlib/__init__.py").exists(),
        ),
        ("schemathesis", runs("schemathesis", &["--version"])),
        (
            "openapi-spec-validator",
            runs("python3", &["-c", "import openapi_spec_validator"]),
        ),
    ]
    .into_iter()
    .filter(|(_, there)| !there)
    .map(|(name, _)| name)
    .collect()
}

/// Stops the whole test run at once, naming `scripts/test`, when a tool is missing.
pub fn require() {
    static CHECKED: Once = Once::new();
    CHECKED.call_once(|| {
        if std::env::var_os("YUNID_TEST_WITHOUT_TOOLS").is_some() {
            return;
        }
        let missing = missing();
        if !missing.is_empty() {
            let message = format!(
                "\nyunid's tests need tools that are not installed ({}).\n\
                 Run `{INSTALL}`: it installs them (pinned versions) and runs every test.\n\
                 (YUNID_TEST_WITHOUT_TOOLS=1 runs on; the tests that need them then fail.)\n",
                missing.join(", ")
            );
            // Straight to the process's standard error: the test harness captures `eprintln!`.
            use std::io::Write;
            let _ = std::io::stderr().write_all(message.as_bytes());
            std::process::exit(1);
        }
    });
}
