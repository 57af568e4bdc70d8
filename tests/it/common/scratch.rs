//! Where the tests write: one folder per test process, on the machine's RAM-backed tmpfs when it
//! has one to spare, else in the system's temp folder.
//!
//! Why RAM: the suite writes several GB of short-lived files (caches, OCI layouts, root
//! filesystems unpacked by umoci, mmdebstrap's tarball, registries' storage). On the CI machines'
//! ext4 over a virtual disk, creating and freeing them was kernel time of its own: umoci's unpack
//! of the webapp image took 5.1 user + 5.5 system seconds there and 4.3 + 1.1 on /dev/shm. The
//! code under test is the same either way; nothing here relies on a property only tmpfs has.
//!
//! Why one folder per process: a static fixture (a warm cache, mmdebstrap's tree) is never
//! dropped, and test runners that start a process per test (nextest) run several at once. So
//! each process owns `BASE/stevedore-tests-UID/PID`, removes it when it exits, and removes the
//! folders of processes that are gone (killed runs) when it starts. Everything a test writes is
//! under that one folder, so warm caches can be hard-linked into any test's folder.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Overrides the choice below (a folder; created if missing).
const OVERRIDE: &str = "STEVEDORE_TEST_TMPDIR";

/// What the suite needs at its peak, with room to spare: 4.9 GB was the most /dev/shm held in a
/// whole run (the static fixtures: mmdebstrap's tree and tarball, warm caches, the two-platform
/// build; and the largest tests' own folders). Fits the common default tmpfs of half the memory
/// of a 24 GB machine. Below this, RAM is not taken; the disk is used.
const RAM_NEEDED: u64 = 8 << 30;

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// This process's scratch folder, made (and stale siblings removed) on first use.
pub fn root() -> &'static Path {
    ROOT.get_or_init(|| {
        // per user: another user's folder of the same name would not be writable
        let parent = base().join(format!("stevedore-tests-{}", super::unsafe_free_uid()));
        std::fs::create_dir_all(&parent).unwrap();
        remove_folders_of_gone_processes(&parent);
        let dir = parent.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // SAFETY: `remove_root` is a plain `extern "C" fn()` that never unwinds.
        unsafe { libc::atexit(remove_root) };
        dir
    })
}

/// The override, else /dev/shm when it fits, else the system's temp folder. Never under
/// target/: that is inside this repository's work tree, where stevedore would take the files'
/// times from git (the golden digests assume no repository around their sources).
fn base() -> PathBuf {
    if let Some(dir) = std::env::var_os(OVERRIDE) {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if ram_disk_fits(shm) {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

/// `dir` is a writable tmpfs that lets the tests do what they do on disk (run programs from an
/// unpacked image, open its device nodes, keep setuid bits), with room for the suite, on a
/// machine with that much memory free.
fn ram_disk_fits(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: both calls only write into the zeroed structs given; `c` is a valid C string.
    let (fs, vfs) = unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        let mut vfs: libc::statvfs = std::mem::zeroed();
        if libc::statfs(c.as_ptr(), &mut fs) != 0 || libc::statvfs(c.as_ptr(), &mut vfs) != 0 {
            return false;
        }
        (fs, vfs)
    };
    let restricted = libc::ST_RDONLY | libc::ST_NODEV | libc::ST_NOEXEC | libc::ST_NOSUID;
    let room = vfs.f_bavail.saturating_mul(vfs.f_frsize);
    fs.f_type == libc::TMPFS_MAGIC
        && vfs.f_flag & restricted == 0
        && room >= RAM_NEEDED
        && mem_available().is_some_and(|m| m >= RAM_NEEDED)
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Folders named after a process id that no longer runs: what a killed run left behind.
fn remove_folders_of_gone_processes(parent: &Path) {
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.parse::<u32>().is_ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The libtest harness ends with `exit` whether tests failed or not, which runs `atexit`
/// handlers; a process killed by a signal leaves its folder to the next run's cleanup.
extern "C" fn remove_root() {
    if let Some(dir) = ROOT.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
