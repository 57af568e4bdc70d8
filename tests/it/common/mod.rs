//! Shared helpers for the integration tests: running the real binary, requiring real tools,
//! and walking unpacked trees.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod scratch;
mod warm;
pub use warm::warm_cache;

pub const BIN: &str = env!("CARGO_BIN_EXE_stevedore");

/// Fails (never skips) when a tool the test needs is missing, saying how to install it.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is required by this test: install it with `apt-get install -y {package}` (as .ci/run does)"
    );
}

pub fn require_root(why: &str) {
    let uid = unsafe_free_uid();
    assert_eq!(
        uid, 0,
        "this test must run as root: {why} (CI runs as root)"
    );
}

fn unsafe_free_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

pub fn is_root() -> bool {
    unsafe_free_uid() == 0
}

/// Runs stevedore with a private cache and no inherited SOURCE_DATE_EPOCH.
pub fn stevedore(cache: &Path, args: &[&str]) -> Output {
    stevedore_env(cache, args, &[])
}

pub fn stevedore_env(cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--cache-dir").arg(cache).args(args);
    cmd.env_remove("SOURCE_DATE_EPOCH")
        .env_remove("STEVEDORE_CACHE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run stevedore")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds and returns the digest stevedore printed, checking the stdout contract on the way.
pub fn build_ok(cache: &Path, args: &[&str]) -> String {
    build_ok_env(cache, args, &[])
}

pub fn build_ok_env(cache: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut full = vec!["build"];
    full.extend_from_slice(args);
    let out = stevedore_env(cache, &full, env);
    assert!(
        out.status.success(),
        "build failed: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must be exactly the digest line, got {text:?}"
    );
    let digest = lines[0].to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "not a digest: {digest}"
    );
    digest
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

pub fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What a path in an unpacked tree looks like, in the terms the recipe speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub link: Option<String>,
    pub content: Option<Vec<u8>>,
    pub nlink: u64,
    pub ino: u64,
}

/// Walks `root` (not following links) into path → node, paths relative with a leading `/`.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
        let entry = entry.unwrap();
        let md = entry.path().symlink_metadata().unwrap();
        let rel = format!(
            "/{}",
            entry.path().strip_prefix(root).unwrap().to_str().unwrap()
        );
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else {
            '?'
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                link: ft.is_symlink().then(|| {
                    std::fs::read_link(entry.path())
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string()
                }),
                content: ft.is_file().then(|| std::fs::read(entry.path()).unwrap()),
                nlink: md.nlink(),
                ino: md.ino(),
            },
        );
    }
    out
}

/// A test's own folder, removed when dropped; under the process's scratch root (see
/// `scratch`), as every test's files are, so a warm cache can be hard-linked into it.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("stevedore-test-")
        .tempdir_in(scratch::root())
        .unwrap()
}

/// A folder for a fixture shared by the tests of one process (a `static OnceLock`): NAME under
/// the process's scratch root, which goes when the process ends (see `scratch`).
pub fn fixture_dir(name: &str) -> PathBuf {
    let dir = scratch::root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `git ARGS` in `dir` with a fixed author, committer and time (commit ids are the same on
/// every run and machine).
pub fn git(dir: &Path, args: &[&str]) {
    run(Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid"));
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

const CHROOT_SCRIPT: &str = r#"R=$1; shift
mount -t proc proc "$R/proc" || exit 1
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
for d in null zero random urandom full tty; do [ -e "$R/dev/$d" ] || touch "$R/dev/$d"; mount --bind /dev/$d "$R/dev/$d"; done
exec chroot $CHROOT_OPTS "$R" "$@""#;

/// `unshare` + `chroot` (shared/research/environment.md, section 3); host network.
pub fn chroot_command(rootfs: &Path, userspec: Option<&str>, args: &[String]) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "--kill-child",
        "--mount",
        "--pid",
        "--fork",
        "--uts",
        "--ipc",
        "--propagation",
        "private",
    ])
    .args(["sh", "-c", CHROOT_SCRIPT, "sh"])
    .arg(rootfs)
    .args(args)
    .env(
        "CHROOT_OPTS",
        userspec.map_or(String::new(), |u| format!("--userspec={u}")),
    );
    c
}

/// Unpacks `image` (`LAYOUT:TAG`) with umoci into the runtime bundle `bundle`: the image's
/// layers applied in `bundle/rootfs`, and the runtime config umoci derives from the image's
/// config in `bundle/config.json`. `umoci raw unpack` + `raw runtime-config` rather than
/// `umoci unpack`, which applies the same layers with the same code and then also hashes every
/// file into an mtree manifest for a later `repack`: ~30% of its CPU (webapp: 10.0 vs 7.0
/// CPU-s), paid by every end-to-end test and never read.
pub fn umoci_unpack(image: &str, bundle: &Path) {
    require_tool("umoci", "umoci");
    std::fs::create_dir_all(bundle).unwrap();
    let rootfs = bundle.join("rootfs");
    run(Command::new("umoci")
        .args(["raw", "unpack", "--image", image])
        .arg(&rootfs));
    run(Command::new("umoci")
        .args(["raw", "runtime-config", "--image", image, "--rootfs"])
        .arg(&rootfs)
        .arg(bundle.join("config.json")));
}

/// Copies of the repository's recipes in a scratch folder (lockfiles stay out of the work
/// tree), with the keyrings and fixtures beside them as the recipes expect.
pub fn recipes_copy(t: &Path, names: &[&str]) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(t.join("recipes")).unwrap();
    std::os::unix::fs::symlink(repo.join("keyrings"), t.join("keyrings")).unwrap();
    // Copied, not linked: sources must really lie inside the recipe's context folder.
    run(Command::new("cp")
        .arg("-r")
        .arg(repo.join("fixtures"))
        .arg(t.join("fixtures")));
    for n in names {
        std::fs::copy(repo.join("recipes").join(n), t.join("recipes").join(n)).unwrap();
    }
}

/// A copy of one of the repository's recipes in a scratch folder (so a lockfile the test writes
/// stays out of the work tree), with the keyrings beside it as the recipe expects.
pub fn recipe_copy(t: &Path, name: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(t.join("recipes")).unwrap();
    std::os::unix::fs::symlink(repo.join("keyrings"), t.join("keyrings")).unwrap();
    let dest = t.join("recipes").join(name);
    std::fs::copy(repo.join("recipes").join(name), &dest).unwrap();
    dest
}
