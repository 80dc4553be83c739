//! Lays out the agent's release binary so that its hot code sits together
//! (`link/hot_text.ld` says why and how the list is made). Debug builds
//! keep the default layout: their code is not what counties run, and
//! matching thousands of patterns against an unoptimised binary's sections
//! would only slow every test build. Only x86_64 links are measured
//! (docs/benchmarks.md); other architectures keep the default layout until
//! someone measures theirs.

fn main() {
    println!("cargo:rerun-if-changed=link/hot_text.ld");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let x86_64 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "x86_64");
    if release && linux && x86_64 {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/link/hot_text.ld");
        println!("cargo:rustc-link-arg-bin=countywatch-agent=-Wl,-T,{script}");
    }
}
