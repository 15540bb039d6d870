//! Bad input: a clear error naming the line or field, exit code 2.

use std::process::Stdio;

use tokio::process::Command;

use crate::child::scratch;
use crate::support::PATIENCE;

/// Runs the binary with `args` to its end: exit code and stderr.
async fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_relive-testkit"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, output)
        .await
        .expect("exits")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn run_script(text: &str) -> (Option<i32>, String) {
    let path = scratch("bad.json");
    std::fs::write(&path, text).unwrap();
    let result = run(&["--script", path.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&path);
    result
}

#[tokio::test]
async fn a_bad_script_exits_2_naming_the_line_and_the_field() {
    let cases = [
        (
            "{\"steps\": [\n  {\"at\": 0, \"action\": \"publish\", \"stream\": \"cam\"},\n  {\"at\": 1, \"action\": \"unpublish\"}\n]}",
            "line 3, column 3: step 2: missing field `stream`",
        ),
        (
            "{\"steps\": [\n  {\"at\": 1, \"action\": \"frezze\", \"stream\": \"cam\"}\n]}",
            "line 2, column 3: step 1: unknown variant `frezze`",
        ),
        (
            "{\"steps\": [\n  {\"at\": \"soon\", \"action\": \"cut_sockets\"}\n]}",
            "line 2, column 3: step 1: invalid `at`",
        ),
        ("{\"steps\": [\n  {\"at\": 1,,}\n]}", "line 2, column 12:"),
        ("{\"stepz\": []}", "line 1, column 8: unknown field `stepz`"),
    ];
    for (script, expected) in cases {
        let (code, stderr) = run_script(script).await;
        assert_eq!(code, Some(2), "{script}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{script}: expected {expected:?} in {stderr:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_script_or_a_bad_flag_exits_2() {
    let (code, stderr) = run(&["--script", "/nonexistent/relive-script.json"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot read script"), "{stderr}");
    let (code, stderr) = run(&["--publish", "a/b"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid stream name"), "{stderr}");
    let (code, _) = run(&["--exit-after-script"]).await;
    assert_eq!(code, Some(2));
    // An endless file is refused at the size bound, not read forever.
    let (code, stderr) = run(&["--script", "/dev/zero"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("larger than"), "{stderr}");
}
