//! stevedore's Tomcat image (`recipes/tomcat.toml`: bookworm minbase, OpenJDK 17, Tomcat 10)
//! against `mmdebstrap --variant=minbase` of the same package set, file by file, and the
//! image's rootfs put to work in a chroot.
//!
//! The two builds run side by side against the same mirror (the recipe's three suites), once
//! per test binary ([`fixture`]): stevedore locks and builds the recipe chain into an OCI
//! layout while mmdebstrap (`--mode=root`, `--variant=minbase`, `--include=` the recipes'
//! packages and `usr-is-merged`) writes a tar. Both trees are read without extracting
//! anything to the host: the OCI layers in order with their whiteouts, and mmdebstrap's tar,
//! with the `tar` crate; umoci unpacks the image once more for the chroot tests.
//!
//! mmdebstrap also gets `--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr`: without it, its
//! essential phase satisfies `init-system-helpers`' `usrmerge | usr-is-merged` with `usrmerge`
//! (and perl with it), so the package sets would differ by nine packages. The hook lays out
//! the merged-/usr symlinks as debootstrap does, and installs `usr-is-merged`, as stevedore does.
//!
//! What is asserted:
//! 1. the package sets are the same: stevedore's lockfile and mmdebstrap's
//!    `/var/lib/dpkg/status` name the same packages at the same versions (the message lists
//!    the differences);
//! 2. every path a package ships (the union of mmdebstrap's `/var/lib/dpkg/info/*.list`, placed
//!    as dpkg placed it: through the merged-/usr symlinks and dpkg's diversions) has the same
//!    type, mode, owner, symlink target, device numbers, content (sha256) and hardlink group in
//!    both trees. The judge of "what the package ships" is the `.deb` itself, read by
//!    `dpkg-deb --fsys-tarfile`: where mmdebstrap's file is no longer what any of its packages
//!    ship, a maintainer script changed it, and a difference there is reported, not failed
//!    (the next issue's work). Every other difference fails the test, naming every path and how
//!    it differs.
//!
//! Reported only (`--nocapture`): the counts, the paths scripts changed, the paths only
//! mmdebstrap has (made by scripts or by mmdebstrap itself, grouped by top directory), the
//! paths both trees have that no package ships (made by scripts in mmdebstrap, by setup in
//! stevedore) and whether they agree, and the paths only stevedore has.
//!
//! Paths only stevedore has fail the test unless `ONLY_IN_STEVEDORE` names them with a reason:
//! a missing package file already fails assertion 2, so a path no package ships and no script
//! of this package set made can only come from stevedore's own setup, which exists to do what
//! the scripts do. The other way round, every path only mmdebstrap has, every script-made path
//! whose attributes differ, and every packaged path a script changed that stevedore has as
//! shipped must be in `ACCEPTED` with its reason: what the issue listed (ld.so.cache, tzdata,
//! PAM, dpkg's arch and diversions, ucf's hashfile, apt's marks, jexec, fontconfig, shadow) is
//! reproduced now, and the accepted rest is what a container image legitimately lacks (logs
//! of the bootstrap, debconf's cache, dpkg's backup files, ...).

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use common::*;

/// The recipe's sources, as sources.list lines for mmdebstrap.
const SOURCES: [&str; 3] = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
];

/// The packages the recipe chain requests (debian-bookworm → openjdk → tomcat), for
/// mmdebstrap's `--include`.
const INCLUDE: &str = "usr-is-merged,openjdk-17-jre-headless,tomcat10,systemd-standalone-sysusers,systemd-standalone-tmpfiles";

/// Paths stevedore's setup writes on purpose although mmdebstrap's run of this package set
/// has nothing there, each with its reason. Empty: setup makes nothing the scripts (and
/// dpkg) do not.
const ONLY_IN_STEVEDORE: &[&str] = &[];

/// Differences accepted, each with its reason: a path (or a prefix ending in `*`) only
/// mmdebstrap's tree has, or that both have with other attributes or content. Anything else
/// fails the comparison.
const ACCEPTED: &[(&str, &str)] = &[
    // Made by the bootstrap itself, not by any package: a container runtime provides them.
    (
        "/dev/*",
        "device nodes mmdebstrap makes; a container runtime mounts its own /dev",
    ),
    (
        "/etc/fstab",
        "mmdebstrap writes an empty fstab; a container mounts nothing from it",
    ),
    (
        "/etc/hostname",
        "mmdebstrap copies the host's name; the runtime sets the container's",
    ),
    (
        "/etc/resolv.conf",
        "mmdebstrap copies the host's; the runtime mounts the container's",
    ),
    // Bookkeeping of the tools that ran, not state the image needs.
    (
        "/etc/.pwd.lock",
        "shadow's lock file, left by the account tools that ran",
    ),
    (
        "/etc/passwd-",
        "backup copy the account tools leave; stevedore writes the files once",
    ),
    (
        "/etc/group-",
        "backup copy the account tools leave; stevedore writes the files once",
    ),
    (
        "/etc/shadow-",
        "backup copy the account tools leave; stevedore writes the files once",
    ),
    (
        "/etc/gshadow-",
        "backup copy the account tools leave; stevedore writes the files once",
    ),
    (
        "/var/cache/debconf/*",
        "debconf's answer cache: setup uses the templates' defaults directly",
    ),
    (
        "/var/cache/apt/archives/lock",
        "apt's lock file, left by the apt run",
    ),
    (
        "/var/lib/apt/lists/lock",
        "apt's lock file, left by the apt run",
    ),
    (
        "/var/lib/dpkg/lock",
        "dpkg's lock file, left by the dpkg run",
    ),
    (
        "/var/lib/dpkg/lock-frontend",
        "dpkg's lock file, left by the dpkg run",
    ),
    (
        "/var/lib/dpkg/status-old",
        "dpkg's backup of the previous status: stevedore writes it once",
    ),
    (
        "/var/lib/dpkg/diversions-old",
        "dpkg's backup of the previous diversions",
    ),
    (
        "/var/lib/dpkg/triggers*",
        "dpkg's pending-trigger state: every trigger's effect is in the image already",
    ),
    // Services: no init system runs in a container (the coverage report says so per command).
    (
        "/etc/systemd/system/*",
        "systemd unit enablement by deb-systemd-helper: no init in a container",
    ),
    (
        "/var/lib/systemd/deb-systemd-helper-enabled*",
        "deb-systemd-helper's state: no init in a container",
    ),
    (
        "/etc/rc0.d/K01hwclock.sh",
        "sysv-rc links (update-rc.d): no init in a container",
    ),
    (
        "/etc/rc6.d/K01hwclock.sh",
        "sysv-rc links (update-rc.d): no init in a container",
    ),
    (
        "/etc/rcS.d/S01hwclock.sh",
        "sysv-rc links (update-rc.d): no init in a container",
    ),
    (
        "/etc/rc0.d",
        "sysv-rc links (update-rc.d): no init in a container",
    ),
    (
        "/etc/rc6.d",
        "sysv-rc links (update-rc.d): no init in a container",
    ),
    (
        "/etc/rcS.d",
        "sysv-rc links (update-rc.d): no init in a container",
    ),
    (
        "/var/lib/tomcat10/webapps/ROOT*",
        "tomcat10's default ROOT webapp: not copied, it would shadow the image's ROOT.war",
    ),
    // Both have them, with other bytes; what matters is compared elsewhere.
    (
        "/etc/apt/sources.list",
        "written from the recipe's [[sources]] (mmdebstrap: its command line)",
    ),
    (
        "/etc/ld.so.cache",
        "same libraries in the same order (ldconfig_lists_the_same_libraries); ldconfig shares string suffixes and adds a generator note",
    ),
    (
        "/etc/ssl/certs/java/cacerts",
        "the JKS keystore stevedore writes with SOURCE_DATE_EPOCH entry dates (keytool-checked in setup_packages.rs)",
    ),
    (
        "/var/lib/apt/extended_states",
        "same marks (apt_mark_showauto_lists_the_dependencies); sorted by name, apt writes its cache order",
    ),
    (
        "/var/lib/dpkg/status",
        "written by stevedore from the control files; the same packages and versions (assertion 1)",
    ),
];

fn accepted(path: &str) -> Option<&'static str> {
    ACCEPTED.iter().find_map(|(p, why)| {
        let hit = match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == *p,
        };
        hit.then_some(*why)
    })
}

/// What one path is, in the terms both trees share (mtimes are not compared).
#[derive(Clone, Debug)]
struct Node {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    target: Option<String>,
    sha256: Option<String>,
    dev: Option<(u32, u32)>,
    /// Hardlink identity inside its own tree.
    ino: u64,
}

impl Node {
    /// Every attribute compared, by name.
    fn attrs(&self) -> [(&'static str, String); 6] {
        [
            ("type", self.kind.to_string()),
            ("mode", format!("{:04o}", self.mode)),
            ("owner", format!("{}:{}", self.uid, self.gid)),
            ("target", format!("{:?}", self.target)),
            ("content", self.sha256.clone().unwrap_or_default()),
            ("device", format!("{:?}", self.dev)),
        ]
    }

    fn same(&self, other: &Node) -> bool {
        self.attrs() == other.attrs()
    }

    /// How `other` differs, e.g. `mode 0755 vs 0700`.
    fn diff(&self, other: &Node) -> Vec<String> {
        self.attrs()
            .into_iter()
            .zip(other.attrs())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, b)| format!("{} {} vs {}", a.0, short(&a.1), short(&b.1)))
            .collect()
    }
}

fn short(s: &str) -> &str {
    if s.len() == 64 { &s[..12] } else { s }
}

#[derive(Default)]
struct Tree {
    nodes: BTreeMap<String, Node>,
    next_ino: u64,
}

/// `./usr/bin/` → `/usr/bin`; `./` → `/`.
fn norm(p: &str) -> String {
    let t = p.trim_start_matches("./").trim_matches('/');
    if t.is_empty() || t == "." {
        "/".into()
    } else {
        format!("/{t}")
    }
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn hex_sha256(r: &mut impl Read) -> String {
    let mut h = Sha256::new();
    std::io::copy(r, &mut h).unwrap();
    hex::encode(h.finalize())
}

/// One tar entry, read: its normalised path, what it is, and the path it hardlinks to.
struct Raw {
    path: String,
    node: Node,
    hardlink: Option<String>,
}

fn read_tar(r: impl Read, mut f: impl FnMut(Raw)) {
    read_tar_keeping(r, |_| false, |raw, _| f(raw));
}

/// `read_tar`, also handing over the content of the regular files `keep` names.
fn read_tar_keeping(
    r: impl Read,
    keep: impl Fn(&str) -> bool,
    mut f: impl FnMut(Raw, Option<Vec<u8>>),
) {
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let path = norm(e.path().unwrap().to_str().unwrap());
        let h = e.header().clone();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_str().unwrap().to_string());
        let t = h.entry_type();
        let mut kept = None;
        let kind = match t {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Regular | tar::EntryType::Continuous => 'f',
            tar::EntryType::Link => 'h',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            tar::EntryType::Fifo => 'p',
            other => panic!("{path}: unexpected tar entry type {other:?}"),
        };
        let node = Node {
            kind,
            mode: h.mode().unwrap() & 0o7777,
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            target: (kind == 'l').then(|| link.clone().unwrap()),
            sha256: (kind == 'f').then(|| {
                if keep(&path) {
                    let mut buf = Vec::new();
                    e.read_to_end(&mut buf).unwrap();
                    let sha = hex::encode(Sha256::digest(&buf));
                    kept = Some(buf);
                    sha
                } else {
                    hex_sha256(&mut e)
                }
            }),
            dev: matches!(kind, 'c' | 'b').then(|| {
                (
                    h.device_major().unwrap().unwrap(),
                    h.device_minor().unwrap().unwrap(),
                )
            }),
            ino: 0,
        };
        let hardlink = (kind == 'h').then(|| norm(&link.unwrap()));
        f(
            Raw {
                path,
                node,
                hardlink,
            },
            kept,
        );
    }
}

impl Tree {
    fn insert(&mut self, raw: Raw) {
        let node = match raw.hardlink {
            Some(to) => self
                .nodes
                .get(&to)
                .unwrap_or_else(|| panic!("{}: hardlink to missing {to}", raw.path))
                .clone(),
            None => {
                self.next_ino += 1;
                Node {
                    ino: self.next_ino,
                    ..raw.node
                }
            }
        };
        self.nodes.insert(raw.path, node);
    }

    fn remove_under(&mut self, dir: &str, and_itself: bool) {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
        if and_itself {
            self.nodes.remove(dir);
        }
    }

    /// Applies one OCI layer: opaque markers and whiteouts first, then the entries.
    fn apply_layer(&mut self, r: impl Read) {
        let mut entries = Vec::new();
        read_tar(r, |raw| entries.push(raw));
        let mut rest = Vec::new();
        for raw in entries {
            let name = raw.path.rsplit('/').next().unwrap().to_string();
            if name == ".wh..wh..opq" {
                self.remove_under(parent(&raw.path), false);
            } else if let Some(hidden) = name.strip_prefix(".wh.") {
                let dir = parent(&raw.path);
                let victim = if dir == "/" {
                    format!("/{hidden}")
                } else {
                    format!("{dir}/{hidden}")
                };
                self.remove_under(&victim, true);
            } else {
                rest.push(raw);
            }
        }
        for raw in rest {
            self.insert(raw);
        }
    }

    fn read(&self, path: &str) -> &Node {
        self.nodes
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing"))
    }

    /// Where dpkg puts `path` in this tree: symlinks in the parent directories are followed
    /// (merged /usr), and the last component too when the package ships a directory there
    /// (dpkg keeps a symlink to a directory in place of the directory).
    fn place(&self, path: &str, follow_last: bool) -> String {
        self.resolve(path, follow_last, 0)
    }

    fn resolve(&self, path: &str, follow_last: bool, depth: u32) -> String {
        assert!(depth < 40, "symlink loop at {path}");
        let comps: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let mut cur = String::new();
        for (i, c) in comps.iter().enumerate() {
            if *c == ".." {
                cur = parent(&cur).trim_end_matches('/').to_string();
                continue;
            }
            let next = format!("{cur}/{c}");
            let last = i + 1 == comps.len();
            match self.nodes.get(&next) {
                Some(n) if n.kind == 'l' && (!last || follow_last) => {
                    let target = n.target.as_deref().unwrap();
                    let joined = if target.starts_with('/') {
                        target.to_string()
                    } else {
                        format!("{cur}/{target}")
                    };
                    cur = self
                        .resolve(&joined, true, depth + 1)
                        .trim_end_matches('/')
                        .to_string();
                }
                _ => cur = next,
            }
        }
        if cur.is_empty() { "/".into() } else { cur }
    }

    /// The other paths sharing `path`'s inode.
    fn hardlinks(&self, by_ino: &HashMap<u64, Vec<String>>, path: &str) -> BTreeSet<String> {
        let n = self.read(path);
        by_ino[&n.ino]
            .iter()
            .filter(|p| *p != path)
            .cloned()
            .collect()
    }

    fn by_ino(&self) -> HashMap<u64, Vec<String>> {
        let mut m: HashMap<u64, Vec<String>> = HashMap::new();
        for (p, n) in &self.nodes {
            if n.kind == 'f' {
                m.entry(n.ino).or_default().push(p.clone());
            }
        }
        m
    }
}

/// The locked packages: name → (version, sha256 hex).
fn locked_packages(lock: &Path) -> BTreeMap<String, (String, String)> {
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(lock).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for layer in v["layers"].as_array().unwrap() {
        for p in layer["packages"].as_array().unwrap() {
            let sha = p["sha256"].as_str().unwrap();
            out.insert(
                p["name"].as_str().unwrap().to_string(),
                (
                    p["version"].as_str().unwrap().to_string(),
                    sha.trim_start_matches("sha256:").to_string(),
                ),
            );
        }
    }
    out
}

/// mmdebstrap's installed packages: name → version, from its dpkg status.
fn installed_packages(status: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for para in status.split("\n\n") {
        let field = |k: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .map(str::to_string)
        };
        if let (Some(name), Some(version)) = (field("Package"), field("Version"))
            && field("Status").as_deref() == Some("install ok installed")
        {
            out.insert(name, version);
        }
    }
    out
}

fn set_differences(
    lock: &BTreeMap<String, (String, String)>,
    mm: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (name, (v, _)) in lock {
        match mm.get(name) {
            None => diffs.push(format!("only in stevedore's lock: {name} {v}")),
            Some(w) if w != v => diffs.push(format!("{name}: lock {v}, mmdebstrap {w}")),
            _ => {}
        }
    }
    for (name, v) in mm {
        if !lock.contains_key(name) {
            diffs.push(format!("only in mmdebstrap: {name} {v}"));
        }
    }
    diffs
}

/// The top of a path for grouping: two components under /usr and /var, one elsewhere.
fn group_of(path: &str) -> String {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let n = if matches!(comps.first(), Some(&"usr") | Some(&"var")) {
        2
    } else {
        1
    };
    format!("/{}", comps[..n.min(comps.len())].join("/"))
}

fn grouped(paths: &[String]) -> String {
    let mut groups: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for p in paths {
        groups.entry(group_of(p)).or_default().push(p);
    }
    let mut out = String::new();
    for (g, ps) in groups {
        let examples: Vec<&str> = ps.iter().take(4).map(|p| p.as_str()).collect();
        out += &format!("    {g}: {} ({}", ps.len(), examples.join(", "));
        out += if ps.len() > 4 { ", ...)\n" } else { ")\n" };
    }
    out
}

/// Stops a background process group by its PID when the test ends early (a failed build).
struct StopOnDrop(Option<std::process::Child>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
}

/// stevedore's tree: the manifest's layers in order, whiteouts applied.
fn oci_tree(layout: &Path) -> Tree {
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let mut st = Tree::default();
    for layer in manifest["layers"].as_array().unwrap() {
        let file = std::fs::File::open(blob(layer["digest"].as_str().unwrap())).unwrap();
        let file = std::io::BufReader::new(file);
        match layer["mediaType"].as_str().unwrap() {
            m if m.ends_with("+gzip") => st.apply_layer(flate2::read::MultiGzDecoder::new(file)),
            m if m.ends_with("+zstd") => {
                st.apply_layer(zstd::stream::read::Decoder::new(file).unwrap())
            }
            m if m.ends_with(".tar") => st.apply_layer(file),
            m => panic!("layer media type {m}"),
        }
    }

    st
}

/// Both builds, once per test binary.
struct Fixture {
    cache: std::path::PathBuf,
    lock: std::path::PathBuf,
    /// stevedore's image, unpacked by umoci (owners kept), for the chroot tests.
    rootfs: std::path::PathBuf,
    /// mmdebstrap's `/etc/ld.so.cache`, written out for `ldconfig -C`.
    mm_ld_cache: std::path::PathBuf,
    st: Tree,
    mm: Tree,
    mm_files: HashMap<String, Vec<u8>>,
    built: std::time::Duration,
    mm_done: std::time::Duration,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(build_both)
}

fn build_both() -> Fixture {
    require_tool("mmdebstrap", "mmdebstrap");
    require_tool("dpkg-deb", "dpkg");
    require_tool("umoci", "umoci");
    require_tool("unshare", "util-linux");
    require_root("mmdebstrap --mode=root installs as root, keeping owners and device nodes");
    let started = Instant::now();
    // A fixture folder, not a temp dir: a static is never dropped, and this is ~1.5 GB
    // (cache, bundle, mmdebstrap's tarball); the process's scratch root goes at its exit.
    let t = crate::common::fixture_dir("mmdebstrap-fixture");
    for r in ["debian-bookworm.toml", "openjdk.toml"] {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(t.as_path().join("recipes")).unwrap();
        std::fs::copy(
            repo.join("recipes").join(r),
            t.as_path().join("recipes").join(r),
        )
        .unwrap();
    }
    let recipe = recipe_copy(t.as_path(), "tomcat.toml");
    let cache = t.as_path().join("cache");
    // webapp's chain is tomcat.toml's plus the WAR layer: its warm cache holds every layer.
    warm_cache(&["webapp.toml"], &cache);
    let mm_tar = t.as_path().join("mmdebstrap.tar");
    let layout = t.as_path().join("oci");

    // Both resolutions at the same time, so they see the same mirror state.
    let mm_log = t.as_path().join("mmdebstrap.log");
    let mut mm = {
        use std::os::unix::process::CommandExt;
        let child = Command::new("mmdebstrap")
            .args([
                "--mode=root",
                "--variant=minbase",
                &format!("--include={INCLUDE}"),
                "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                "--quiet",
                "bookworm",
            ])
            .arg(&mm_tar)
            .args(SOURCES)
            .env("SOURCE_DATE_EPOCH", "1735689600")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&mm_log).unwrap())
            // its own process group, so the guard stops apt and dpkg under it too
            .process_group(0)
            .spawn()
            .expect("run mmdebstrap");
        StopOnDrop(Some(child))
    };
    let out = stevedore(&cache, &["lock", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    build_ok_env(
        &cache,
        &[
            "--locked",
            path_str(&recipe),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
        &[("SOURCE_DATE_EPOCH", "1735689600")],
    );
    let built = started.elapsed();
    let bundle = t.as_path().join("bundle");
    umoci_unpack(&format!("{}:10", layout.display()), &bundle);
    let status = mm.0.take().unwrap().wait().expect("wait for mmdebstrap");
    assert!(
        status.success(),
        "mmdebstrap failed: {}",
        std::fs::read_to_string(&mm_log).unwrap_or_default()
    );
    let mm_done = started.elapsed();

    let st = oci_tree(&layout);

    // mmdebstrap's tree, keeping the files the comparison and the chroot tests read.
    let mut mm_files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut mm = Tree::default();
    let keep = |p: &str| {
        (p.starts_with("/var/lib/dpkg/info/") && p.ends_with(".list"))
            || p == "/var/lib/dpkg/status"
            || p == "/var/lib/dpkg/diversions"
            || p == "/var/lib/apt/extended_states"
            || p == "/etc/ld.so.cache"
    };
    read_tar_keeping(
        std::io::BufReader::new(std::fs::File::open(&mm_tar).unwrap()),
        keep,
        |raw, content| {
            if let Some(c) = content {
                mm_files.insert(raw.path.clone(), c);
            }
            mm.insert(raw)
        },
    );
    let mm_ld_cache = t.as_path().join("mmdebstrap-ld.so.cache");
    std::fs::write(&mm_ld_cache, &mm_files["/etc/ld.so.cache"]).unwrap();
    Fixture {
        cache,
        lock: recipe.with_extension("lock"),
        rootfs: bundle.join("rootfs"),
        mm_ld_cache,
        st,
        mm,
        mm_files,
        built,
        mm_done,
    }
}

/// The checks below share one fixture that takes ~40 s (mmdebstrap's run beside stevedore's
/// build), so they are one test: as separate tests, the second one libtest starts blocks a test
/// thread waiting for the fixture while the first builds it, idling half of a 2-core CI machine
/// for the fixture's whole build. Each check is its own function, and a failure names it.
#[test]
fn tomcat_set_matches_mmdebstrap_file_by_file_and_in_use() {
    tomcat_set_matches_mmdebstrap_for_every_packaged_file();
    su_works_in_the_image();
    the_image_is_on_utc();
    apt_mark_showauto_lists_the_dependencies();
    ldconfig_lists_the_same_libraries();
}

/// Every path of both trees: identical, or explained in `ACCEPTED`.
fn tomcat_set_matches_mmdebstrap_for_every_packaged_file() {
    let started = Instant::now();
    let f = fixture();
    let (st, mm, mm_files, cache) = (&f.st, &f.mm, &f.mm_files, &f.cache);
    let text = |p: &str| String::from_utf8(mm_files[p].clone()).unwrap();

    // 1. The same package set.
    let lock = locked_packages(&f.lock);
    let installed = installed_packages(&text("/var/lib/dpkg/status"));
    let diffs = set_differences(&lock, &installed);
    assert!(
        diffs.is_empty(),
        "stevedore's lock and mmdebstrap installed different packages:\n  {}",
        diffs.join("\n  ")
    );
    // Merged /usr in both.
    for top in ["bin", "lib", "sbin"] {
        for (name, tree) in [("stevedore", &st), ("mmdebstrap", &mm)] {
            let n = tree.read(&format!("/{top}"));
            assert_eq!(
                (n.kind, n.target.as_deref()),
                ('l', Some(format!("usr/{top}").as_str())),
                "{name}: /{top} is not the merged-/usr symlink"
            );
        }
    }

    // What each package ships, from the .deb itself.
    let apt_store = cache.join("apt/sha256");
    let mut shipped: HashMap<(String, String), Node> = HashMap::new();
    for (name, (_, sha)) in &lock {
        let deb = apt_store.join(sha);
        let mut child = Command::new("dpkg-deb")
            .arg("--fsys-tarfile")
            .arg(&deb)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut deb_tree = Tree::default();
        read_tar(child.stdout.take().unwrap(), |raw| deb_tree.insert(raw));
        assert!(child.wait().unwrap().success(), "dpkg-deb {name} ({deb:?})");
        for (p, n) in deb_tree.nodes {
            shipped.insert((name.clone(), p), n);
        }
    }

    // dpkg's diversions: (from, to, by package).
    let diversions: Vec<(String, String, String)> = text("/var/lib/dpkg/diversions")
        .lines()
        .collect::<Vec<_>>()
        .chunks(3)
        .map(|c| (c[0].to_string(), c[1].to_string(), c[2].to_string()))
        .collect();

    // 2. Every packaged path, placed as dpkg placed it, in both trees.
    // placed path → the nodes its packages ship there.
    let mut owned: BTreeMap<String, Vec<(String, Node)>> = BTreeMap::new();
    let mut misplaced = Vec::new();
    for (file, text) in mm_files {
        let Some(stem) = file
            .strip_prefix("/var/lib/dpkg/info/")
            .and_then(|f| f.strip_suffix(".list"))
        else {
            continue;
        };
        let pkg = stem.split(':').next().unwrap().to_string();
        for line in std::str::from_utf8(text).unwrap().lines() {
            if line == "/." {
                continue;
            }
            let node = shipped
                .get(&(pkg.clone(), line.to_string()))
                .unwrap_or_else(|| panic!("{pkg}.list names {line}, which its .deb lacks"))
                .clone();
            let diverted = diversions
                .iter()
                .find(|(from, _, by)| from == line && *by != pkg)
                .map_or(line, |(_, to, _)| to.as_str());
            let follow = node.kind == 'd';
            let (in_st, in_mm) = (st.place(diverted, follow), mm.place(diverted, follow));
            if in_st != in_mm {
                misplaced.push(format!(
                    "{line} ({pkg}): stevedore has it at {in_st}, mmdebstrap at {in_mm}"
                ));
            }
            owned.entry(in_mm).or_default().push((pkg.clone(), node));
        }
    }
    assert!(
        owned.len() > 5000,
        "only {} packaged paths: the .list files were not read",
        owned.len()
    );
    let (st_ino, mm_ino) = (st.by_ino(), mm.by_ino());
    let mut identical = 0;
    let mut reproduced = Vec::new(); // scripts changed it, stevedore's setup did the same
    let mut by_scripts = Vec::new(); // scripts changed it, stevedore did not follow: reported
    let mut failures = misplaced;
    for (path, ships) in &owned {
        let owners: BTreeSet<&str> = ships.iter().map(|(p, _)| p.as_str()).collect();
        let owners = owners.into_iter().collect::<Vec<_>>().join(",");
        let as_shipped = |n: &Node| ships.iter().any(|(_, s)| s.same(n));
        match (st.nodes.get(path), mm.nodes.get(path)) {
            (Some(s), Some(m)) => {
                let mut how = s.diff(m);
                if s.kind == 'f' && m.kind == 'f' {
                    let (hs, hm) = (st.hardlinks(&st_ino, path), mm.hardlinks(&mm_ino, path));
                    if hs != hm {
                        how.push(format!("hardlinks {hs:?} vs {hm:?}"));
                    }
                }
                if how.is_empty() {
                    identical += 1;
                    if !as_shipped(m) {
                        reproduced.push(path.clone());
                    }
                } else if as_shipped(m) {
                    failures.push(format!(
                        "{path} ({owners}): stevedore vs mmdebstrap: {}",
                        how.join(", ")
                    ));
                } else {
                    by_scripts.push(format!("{path} ({owners}): {}", how.join(", ")));
                }
            }
            (None, Some(m)) if as_shipped(m) => {
                failures.push(format!("{path} ({owners}): missing from stevedore's image"))
            }
            (None, Some(_)) => by_scripts.push(format!(
                "{path} ({owners}): missing from stevedore's image; scripts changed it"
            )),
            (Some(_), None) => by_scripts.push(format!(
                "{path} ({owners}): a script removed it in mmdebstrap's run"
            )),
            (None, None) => by_scripts.push(format!("{path} ({owners}): in neither tree")),
        }
    }

    // The rest: paths no package ships.
    let unowned = |p: &String| !owned.contains_key(p) && p != "/";
    let only_mm: Vec<String> = mm
        .nodes
        .keys()
        .filter(|p| unowned(p) && !st.nodes.contains_key(*p))
        .cloned()
        .collect();
    let only_st: Vec<String> = st
        .nodes
        .keys()
        .filter(|p| unowned(p) && !mm.nodes.contains_key(*p))
        .cloned()
        .collect();
    let both: Vec<&String> = st
        .nodes
        .keys()
        .filter(|p| unowned(p) && mm.nodes.contains_key(*p))
        .collect();
    let both_differ: Vec<String> = both
        .iter()
        .filter_map(|p| {
            let how = st.nodes[*p].diff(&mm.nodes[*p]);
            (!how.is_empty()).then(|| format!("{p}: {}", how.join(", ")))
        })
        .collect();
    let unexplained: Vec<&String> = only_st
        .iter()
        .filter(|p| !ONLY_IN_STEVEDORE.contains(&p.as_str()))
        .collect();

    eprintln!(
        "stevedore vs mmdebstrap, Tomcat set ({} packages; stevedore built in {:.0?}, mmdebstrap in {:.0?}, compared in {:.0?})",
        lock.len(),
        f.built,
        f.mm_done,
        started.elapsed()
    );
    eprintln!("  package-owned paths compared: {}", owned.len());
    eprintln!(
        "  identical: {identical} (of which {} changed by scripts and reproduced by setup)",
        reproduced.len()
    );
    for p in &reproduced {
        eprintln!("    {p}");
    }
    eprintln!(
        "  changed by maintainer scripts, stevedore as shipped: {}",
        by_scripts.len()
    );
    for p in &by_scripts {
        eprintln!("    {p}");
    }
    eprintln!(
        "  only in mmdebstrap (made by scripts or mmdebstrap): {}\n{}",
        only_mm.len(),
        grouped(&only_mm)
    );
    eprintln!(
        "  in both, shipped by no package (scripts / setup): {}, differing: {}",
        both.len(),
        both_differ.len()
    );
    for p in &both_differ {
        eprintln!("    {p}");
    }
    eprintln!("  only in stevedore: {}", only_st.len());
    for p in &only_st {
        eprintln!("    {p}");
    }
    eprintln!("  failures: {}", failures.len());

    assert!(
        failures.is_empty(),
        "{} packaged paths differ between stevedore and mmdebstrap although mmdebstrap has them as the .deb ships them:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    assert!(
        unexplained.is_empty(),
        "stevedore's image has paths that neither a package ships nor mmdebstrap's run made; \
         a setup bug, or a deliberate extra to add to ONLY_IN_STEVEDORE with its reason: {unexplained:?}"
    );
    // The other way: every difference left is accepted, with its reason.
    let path_of = |line: &String| {
        line.split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let mut not_accepted = Vec::new();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for line in only_mm.iter().chain(&by_scripts).chain(&both_differ) {
        match accepted(&path_of(line)) {
            Some(why) => *reasons.entry(why).or_default() += 1,
            None => not_accepted.push(line.clone()),
        }
    }
    eprintln!("  accepted differences:");
    for (why, n) in &reasons {
        eprintln!("    {n:>4}  {why}");
    }
    assert!(
        not_accepted.is_empty(),
        "{} differences from mmdebstrap are not in ACCEPTED (reproduce them, or accept them with a reason):\n  {}",
        not_accepted.len(),
        not_accepted.join("\n  ")
    );
}

/// Runs `script` as root in a chroot of stevedore's image.
fn in_image(script: &str) -> std::process::Output {
    let f = fixture();
    common::chroot_command(
        &f.rootfs,
        None,
        &["/bin/sh".into(), "-c".into(), script.into()],
    )
    .output()
    .unwrap()
}

/// pam-auth-update's common files make PAM work: root switches to another user with `su`.
fn su_works_in_the_image() {
    let out = in_image("su -s /bin/sh nobody -c 'id -un' && echo SU-OK");
    let text = stdout(&out);
    assert!(
        out.status.success() && text.contains("nobody\nSU-OK"),
        "{text}\n{}",
        stderr(&out)
    );
}

/// tzdata's default zone: `date` shows UTC, `/etc/timezone` names it.
fn the_image_is_on_utc() {
    let out = in_image("date +%Z && cat /etc/timezone && readlink /etc/localtime");
    assert_eq!(
        stdout(&out),
        "UTC\nEtc/UTC\n/usr/share/zoneinfo/Etc/UTC\n",
        "{}",
        stderr(&out)
    );
}

/// apt's marks: `apt-mark showauto` lists the packages pulled in as dependencies: every one
/// mmdebstrap's apt marked. stevedore also marks some libraries of the Essential set's
/// closure that the resolver reached through a non-essential package first (mmdebstrap
/// installs that closure with dpkg, which marks nothing; the lock records one reason per
/// package, not the whole graph). Harmless: their Essential dependents are manual, so
/// `apt-get autoremove` removes nothing, which is checked too.
fn apt_mark_showauto_lists_the_dependencies() {
    let f = fixture();
    let out = in_image("apt-mark showauto");
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: BTreeSet<String> = stdout(&out).lines().map(str::to_string).collect();
    let mm: BTreeSet<String> = String::from_utf8_lossy(&f.mm_files["/var/lib/apt/extended_states"])
        .lines()
        .filter_map(|l| l.strip_prefix("Package: "))
        .map(str::to_string)
        .collect();
    assert!(shown.contains("libtomcat10-java"), "{shown:?}");
    assert!(
        !shown.contains("tomcat10") && !shown.contains("bash"),
        "{shown:?}"
    );
    let only_mm: Vec<&String> = mm.difference(&shown).collect();
    assert!(only_mm.is_empty(), "not marked by stevedore: {only_mm:?}");
    eprintln!(
        "marked by stevedore only: {:?}",
        shown.difference(&mm).collect::<Vec<_>>()
    );
    let out = in_image("apt-get -s autoremove");
    assert!(
        out.status.success() && stdout(&out).contains(" 0 to remove"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

/// The ld.so.cache stevedore wrote lists the same libraries as the one ldconfig wrote in
/// mmdebstrap's run (`ldconfig -p` in the chroot; the host's `ldconfig -C` for mmdebstrap's).
fn ldconfig_lists_the_same_libraries() {
    let f = fixture();
    let listed = |out: &std::process::Output| -> BTreeSet<String> {
        assert!(out.status.success(), "{}", stderr(out));
        stdout(out)
            .lines()
            .filter(|l| l.starts_with('\t'))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let st = listed(&in_image("ldconfig -p"));
    let mm = listed(&run(Command::new("ldconfig")
        .arg("-C")
        .arg(&f.mm_ld_cache)
        .arg("-p")));
    assert!(st.len() > 50, "{st:?}");
    let only_st: Vec<&String> = st.difference(&mm).collect();
    let only_mm: Vec<&String> = mm.difference(&st).collect();
    assert!(
        only_st.is_empty() && only_mm.is_empty(),
        "ldconfig -p differs: only stevedore {only_st:?}, only mmdebstrap {only_mm:?}"
    );
}
