// The commit the binary is built from, for `ism --version` and `ism_build_info`: the
// ISM_COMMIT variable when set (a build without the repository, such as an image
// build), else git's, else "unknown".
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ISM_COMMIT");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    let commit = std::env::var("ISM_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ISM_COMMIT={commit}");
}
