//! scripts/install.sh into a temporary prefix, then programs built the ways a C or C++
//! developer would: a C program with pkg-config (shared, then static with the pc file's private
//! libraries) and a C++ program with CMake's find_package(fmr); each runs on the default model.

mod common;

use common::c_build::{lib_dir, run, soname};
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const QUICK: &str = r#"{"n_samples": 2, "max_tokens": 12}"#;

fn sh(script: &str, envs: &[(&str, &Path)]) -> String {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script).current_dir(ROOT);
    for (k, v) in envs {
        c.env(k, v);
    }
    run(&mut c)
}

fn dynamic_needs(exe: &Path) -> String {
    run(Command::new("readelf").arg("-d").arg(exe))
}

#[test]
fn installed_prefix_serves_pkg_config_and_cmake_programs() {
    let dir = common::TempDir::new("install");
    let prefix = dir.0.join("prefix");
    // Install what this test run's build made (target/release), without building again.
    let target = lib_dir().parent().unwrap().to_path_buf();
    let out = run(Command::new(format!("{ROOT}/scripts/install.sh"))
        .args(["--no-build", "--prefix"])
        .arg(&prefix)
        .env("CARGO_TARGET_DIR", &target));
    assert!(out.contains(&format!("fmr {VERSION}")), "{out}");

    // The layout: real file, soname link, development link; static library; headers; licenses.
    let lib = prefix.join("lib");
    let real = format!("libfmr.so.{VERSION}");
    assert!(lib.join(&real).is_file());
    assert_eq!(
        std::fs::read_link(lib.join(soname())).unwrap(),
        Path::new(&real)
    );
    assert_eq!(
        std::fs::read_link(lib.join("libfmr.so")).unwrap(),
        Path::new(&soname())
    );
    let so = dynamic_needs(&lib.join(&real));
    assert!(
        so.contains(&format!("Library soname: [{}]", soname())),
        "{so}"
    );
    for f in [
        "lib/libfmr.a",
        "include/fmr/fmr.h",
        "include/fmr/fmr.hpp",
        "lib/pkgconfig/fmr.pc",
        "lib/cmake/fmr/fmrConfig.cmake",
        "lib/cmake/fmr/fmrConfigVersion.cmake",
        "share/doc/fmr/LICENSE-MIT",
        "share/doc/fmr/LICENSE-APACHE",
    ] {
        assert!(prefix.join(f).is_file(), "{f} not installed");
    }
    let pc_path = lib.join("pkgconfig");
    let env = [("PKG_CONFIG_PATH", pc_path.as_path())];
    let version = sh("pkg-config --modversion fmr", &env);
    assert_eq!(version.trim(), VERSION);

    // C with pkg-config, shared: the program asks for the soname and finds it in the prefix.
    let exe = dir.0.join("solve-shared");
    sh(
        "cc -std=c11 -Wall -Wextra -Wpedantic -Werror examples/c/solve.c -o \"$EXE\" \
         $(pkg-config --cflags --libs fmr)",
        &[env[0], ("EXE", &exe)],
    );
    let needs = dynamic_needs(&exe);
    assert!(
        needs.contains(&format!("Shared library: [{}]", soname())),
        "{needs}"
    );
    let out = run(Command::new(&exe)
        .arg(common::smollm2_path())
        .arg("What is 2 + 2?")
        .arg(QUICK)
        .env("LD_LIBRARY_PATH", &lib));
    assert!(out.contains("vote:") && out.contains("sample 1:"), "{out}");

    // C with pkg-config, static: libfmr.a and the pc file's Libs.private are all it takes.
    let exe = dir.0.join("solve-static");
    sh(
        "cc -std=c11 -Wall -Wextra -Wpedantic -Werror examples/c/solve.c -o \"$EXE\" \
         $(pkg-config --cflags fmr) $(pkg-config --static --libs fmr | sed 's/-lfmr /-l:libfmr.a /')",
        &[env[0], ("EXE", &exe)],
    );
    let needs = dynamic_needs(&exe);
    assert!(!needs.contains("libfmr"), "{needs}");
    let out = run(Command::new(&exe)
        .arg(common::smollm2_path())
        .arg("What is 2 + 2?")
        .arg(QUICK));
    assert!(out.contains("vote:"), "{out}");

    // C++ with CMake: find_package(fmr) and the imported target fmr::fmr.
    let build = dir.0.join("cmake-build");
    run(Command::new("cmake")
        .arg("-S")
        .arg(format!("{ROOT}/cpp/example"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .arg("-DCMAKE_BUILD_TYPE=Release"));
    run(Command::new("cmake").arg("--build").arg(&build));
    let exe = build.join("solve");
    let out = run(Command::new(&exe)
        .arg(common::smollm2_path())
        .arg("What is 3 + 4?")
        .arg(QUICK));
    assert!(
        out.contains(&format!("fmr {VERSION} (header {VERSION})")) && out.contains("vote:"),
        "{out}"
    );
    assert!(!out.contains("q:"), "keys shown instead of answers: {out}");

    // The version file refuses an ABI this install does not provide.
    let probe = dir.0.join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    std::fs::write(
        probe.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.16)\nproject(p NONE)\nfind_package(fmr 9.0 QUIET)\n\
         if(fmr_FOUND)\n  message(FATAL_ERROR \"fmr 9.0 accepted\")\nendif()\n",
    )
    .unwrap();
    run(Command::new("cmake")
        .arg("-S")
        .arg(&probe)
        .arg("-B")
        .arg(probe.join("b"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())));
}
