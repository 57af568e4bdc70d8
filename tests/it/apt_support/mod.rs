//! Shared by the apt tests: tiny .debs built in Rust, a signed apt repository in a temp dir, and
//! a loopback HTTP server with fault injection.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use stevedore::digest::Digest;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/apt")
}

pub fn keyrings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("keyrings")
}

/// Fails the test (never skips it) when a host tool is missing, saying how to install it.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{tool}`: install it with `apt-get install -y {package}`"
    );
}

// ---------------------------------------------------------------- .debs

/// A file in a test package's data.tar.
#[derive(Clone)]
pub enum Item {
    Dir(&'static str),
    File(&'static str, Vec<u8>, u32),
    Symlink(&'static str, &'static str),
}

#[derive(Clone)]
pub struct TestDeb {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Extra control fields, in order (`Depends`, `Provides`, `Multi-Arch`, ...).
    pub fields: Vec<(String, String)>,
    pub items: Vec<Item>,
    /// `xz`, `zst`, `gz`, `none`, or anything else to produce an unsupported member name.
    pub data_compression: &'static str,
    pub postinst: String,
}

impl TestDeb {
    pub fn new(name: &str, version: &str) -> TestDeb {
        TestDeb {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            fields: Vec::new(),
            items: vec![
                Item::Dir("./usr/"),
                Item::Dir("./usr/share/"),
                Item::Dir(Box::leak(format!("./usr/share/{name}/").into_boxed_str())),
                Item::File(
                    Box::leak(format!("./usr/share/{name}/hello").into_boxed_str()),
                    format!("{name} {version}\n").into_bytes(),
                    0o644,
                ),
            ],
            data_compression: "xz",
            postinst: "#!/bin/sh\nexit 0\n".into(),
        }
    }

    pub fn postinst(mut self, script: &str) -> Self {
        self.postinst = script.into();
        self
    }

    pub fn field(mut self, k: &str, v: &str) -> Self {
        self.fields.push((k.into(), v.into()));
        self
    }

    pub fn arch(mut self, a: &str) -> Self {
        self.arch = a.into();
        self
    }

    pub fn compression(mut self, c: &'static str) -> Self {
        self.data_compression = c;
        self
    }

    pub fn control(&self) -> String {
        let mut c = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Test <t@example.invalid>\nInstalled-Size: 1\n",
            self.name, self.version, self.arch
        );
        for (k, v) in &self.fields {
            c.push_str(&format!("{k}: {v}\n"));
        }
        c.push_str(&format!("Description: test package {}\n", self.name));
        c
    }

    pub fn build(&self) -> Vec<u8> {
        let control_tar = tar_of(&[
            Item::Dir("./"),
            Item::File("./control", self.control().into_bytes(), 0o644),
            Item::File(
                "./md5sums",
                format!(
                    "00000000000000000000000000000000  usr/share/{}/hello\n",
                    self.name
                )
                .into_bytes(),
                0o644,
            ),
            Item::File("./postinst", self.postinst.clone().into_bytes(), 0o755),
        ]);
        let data_tar = tar_of(&self.items);
        let (data_name, data) = match self.data_compression {
            "xz" => ("data.tar.xz", xz(&data_tar)),
            "zst" => ("data.tar.zst", zstd::encode_all(&data_tar[..], 3).unwrap()),
            "gz" => ("data.tar.gz", gz(&data_tar)),
            "none" => ("data.tar", data_tar),
            other => (
                Box::leak(format!("data.tar.{other}").into_boxed_str()) as &str,
                data_tar,
            ),
        };
        let mut ar = ar::Builder::new(Vec::new());
        for (name, bytes) in [
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.gz", gz(&control_tar)),
            (data_name, data),
        ] {
            let mut header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            header.set_mode(0o100644);
            ar.append(&header, &bytes[..]).unwrap();
        }
        ar.into_inner().unwrap()
    }
}

pub fn tar_of(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match item {
            Item::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            Item::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            Item::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

// ---------------------------------------------------------------- repository

/// How the InRelease is signed.
#[derive(Clone)]
pub enum Signing {
    /// With this armored secret key (fixtures/apt/*.sec.asc), optionally at a faked time and
    /// with a chosen digest.
    Key {
        secret: &'static str,
        faked_time: Option<&'static str>,
        digest: Option<&'static str>,
    },
    /// InRelease is the plain Release text.
    Unsigned,
}

impl Signing {
    pub fn test_key() -> Signing {
        Signing::Key {
            secret: "test-key.sec.asc",
            faked_time: None,
            digest: None,
        }
    }
}

pub struct RepoSpec {
    pub suite: String,
    pub component: String,
    pub debs: Vec<TestDeb>,
    pub signing: Signing,
    /// Extra Release fields (`Valid-Until`, `Date`).
    pub release_fields: Vec<(String, String)>,
    /// Compress a different text than the one the Release's `Packages` entry hashes.
    pub mismatched_text: bool,
    /// Leave the plain `Packages` out of the Release (only `Packages.xz` is listed).
    pub unlisted_text: bool,
    /// `Packages.xz` decodes to the signed text followed by 16 MiB of blank lines (which parse
    /// as nothing): a decompression bomb behind a valid prefix.
    pub index_bomb: bool,
}

impl RepoSpec {
    pub fn new(debs: Vec<TestDeb>) -> RepoSpec {
        RepoSpec {
            suite: "stable".into(),
            component: "main".into(),
            debs,
            signing: Signing::test_key(),
            release_fields: Vec::new(),
            mismatched_text: false,
            unlisted_text: false,
            index_bomb: false,
        }
    }
}

/// A repository on disk; `root` is what the server serves.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub debs: HashMap<String, PathBuf>,
}

impl Repo {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn packages_xz(&self, spec: &RepoSpec) -> PathBuf {
        self.root().join(format!(
            "dists/{}/{}/binary-amd64/Packages.xz",
            spec.suite, spec.component
        ))
    }
}

pub fn now_rfc2822(offset_secs: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-R", "-d", &format!("@{}", unix_now() + offset_secs)])
        .output()
        .expect("date");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .replace("+0000", "UTC")
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The architectures a repository serves: its packages' (`all` goes into each), else amd64.
fn repo_architectures(spec: &RepoSpec) -> Vec<String> {
    let mut arches: Vec<String> = spec
        .debs
        .iter()
        .filter(|d| d.arch != "all")
        .map(|d| d.arch.clone())
        .collect();
    arches.sort();
    arches.dedup();
    if arches.is_empty() {
        arches.push("amd64".into());
    }
    arches
}

pub fn build_repo(spec: &RepoSpec) -> Repo {
    let dir = crate::common::tempdir();
    let root = dir.path();
    let arches = repo_architectures(spec);
    let mut packages: BTreeMap<String, String> = BTreeMap::new();
    let mut debs = HashMap::new();
    for deb in &spec.debs {
        let bytes = deb.build();
        let rel = format!(
            "pool/{}/{}_{}_{}.deb",
            spec.component,
            deb.name,
            deb.version.replace(':', "%3a"),
            deb.arch
        );
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let control = deb.control();
        let (head, desc) = control.split_once("Description:").unwrap();
        let stanza = format!(
            "{head}Filename: {rel}\nSize: {}\nSHA256: {}\nDescription:{desc}\n",
            bytes.len(),
            Digest::of(&bytes).hex()
        );
        for arch in arches
            .iter()
            .filter(|a| deb.arch == "all" || **a == deb.arch)
        {
            packages.entry(arch.clone()).or_default().push_str(&stanza);
        }
        debs.insert(deb.name.clone(), path);
    }
    let dist = root.join("dists").join(&spec.suite);
    let mut release = format!(
        "Origin: stevedore-test\nSuite: {}\nCodename: {}\nDate: {}\n",
        spec.suite,
        spec.suite,
        now_rfc2822(0)
    );
    for (k, v) in &spec.release_fields {
        release.push_str(&format!("{k}: {v}\n"));
    }
    release.push_str(&format!(
        "Architectures: {}\nComponents: {}\nSHA256:\n",
        arches.join(" "),
        spec.component
    ));
    for arch in &arches {
        let packages = packages.get(arch).cloned().unwrap_or_default();
        let comp_dir = format!("{}/binary-{arch}", spec.component);
        std::fs::create_dir_all(dist.join(&comp_dir)).unwrap();
        let packages_xz = if spec.mismatched_text {
            xz(format!("{packages}\n").as_bytes())
        } else if spec.index_bomb {
            let mut bomb = packages.clone().into_bytes();
            bomb.resize(bomb.len() + (16 << 20), b'\n');
            xz(&bomb)
        } else {
            xz(packages.as_bytes())
        };
        std::fs::write(dist.join(&comp_dir).join("Packages"), &packages).unwrap();
        std::fs::write(dist.join(&comp_dir).join("Packages.xz"), &packages_xz).unwrap();
        if !spec.unlisted_text {
            release.push_str(&format!(
                " {} {} {comp_dir}/Packages\n",
                Digest::of(packages.as_bytes()).hex(),
                packages.len()
            ));
        }
        release.push_str(&format!(
            " {} {} {comp_dir}/Packages.xz\n",
            Digest::of(&packages_xz).hex(),
            packages_xz.len(),
        ));
    }
    std::fs::write(dist.join("Release"), &release).unwrap();
    let inrelease = match &spec.signing {
        Signing::Unsigned => release.into_bytes(),
        Signing::Key {
            secret,
            faked_time,
            digest,
        } => clearsign(&release, secret, *faked_time, *digest),
    };
    std::fs::write(dist.join("InRelease"), inrelease).unwrap();
    Repo { dir, debs }
}

/// `gpg --clearsign` with a committed test key in a throwaway GNUPGHOME.
pub fn clearsign(
    text: &str,
    secret: &str,
    faked_time: Option<&str>,
    digest: Option<&str>,
) -> Vec<u8> {
    require_tool("gpg", "gpg");
    // Signing with an imported secret key goes through the agent (a Recommends of gpg).
    require_tool("gpg-agent", "gpg-agent");
    let home = crate::common::tempdir();
    let gpg = |args: &[&str], stdin: Option<&[u8]>| -> Vec<u8> {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", home.path()).args([
            "--batch",
            "--yes",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        if let Some(t) = faked_time {
            cmd.args(["--faked-system-time", t, "--ignore-time-conflict"]);
        }
        cmd.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run gpg");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    gpg(
        &["--import", fixtures().join(secret).to_str().unwrap()],
        None,
    );
    let mut args = vec!["--clearsign"];
    if let Some(d) = digest {
        args.extend(["--digest-algo", d]);
    }
    gpg(&args, Some(text.as_bytes()))
}

// ---------------------------------------------------------------- HTTP server

/// Faults to inject, per request path.
#[derive(Default)]
pub struct Faults {
    /// Answer 503 this many times first.
    pub fail_503: HashMap<String, usize>,
    /// Send the headers for the full body but close after this many bytes, once.
    pub cut_after: HashMap<String, usize>,
}

/// `(path, Range header)` of each request.
pub type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A tiny HTTP/1.1 file server on 127.0.0.1 (one thread per connection, `Range: bytes=N-`
/// supported). Stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub faults: Arc<Mutex<Faults>>,
    /// `(path, range header)` of every request, in order.
    pub log: RequestLog,
}

impl Server {
    pub fn serve(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let faults: Arc<Mutex<Faults>> = Arc::default();
        let log: RequestLog = Arc::default();
        let root = root.to_owned();
        let (s, f, l) = (stop.clone(), faults.clone(), log.clone());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (root, f, l) = (root.clone(), f.clone(), l.clone());
                std::thread::spawn(move || {
                    let _ = handle_conn(conn, &root, &f, &l);
                });
            }
        });
        Server {
            addr,
            stop,
            handle: Some(handle),
            faults,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests_for(&self, suffix: &str) -> Vec<Option<String>> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn handle_conn(
    mut conn: TcpStream,
    root: &Path,
    faults: &Mutex<Faults>,
    log: &Mutex<Vec<(String, Option<String>)>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        let mut range = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("range")
            {
                range = Some(v.trim().to_owned());
            }
        }
        log.lock().unwrap().push((path.clone(), range.clone()));
        {
            let mut f = faults.lock().unwrap();
            if let Some(n) = f.fail_503.get_mut(&path)
                && *n > 0
            {
                *n -= 1;
                conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")?;
                continue;
            }
        }
        let file = root.join(path.trim_start_matches('/'));
        let Ok(body) = std::fs::read(&file) else {
            conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        };
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok());
        let (status, slice, extra) = match start {
            Some(s) if s < body.len() => (
                "206 Partial Content",
                &body[s..],
                format!(
                    "Content-Range: bytes {s}-{}/{}\r\n",
                    body.len() - 1,
                    body.len()
                ),
            ),
            Some(_) => {
                conn.write_all(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n\r\n")?;
                continue;
            }
            None => ("200 OK", &body[..], String::new()),
        };
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}\r\n",
            slice.len()
        )?;
        let cut = faults.lock().unwrap().cut_after.remove(&path);
        if let Some(n) = cut {
            conn.write_all(&slice[..n.min(slice.len())])?;
            conn.flush()?;
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        conn.write_all(slice)?;
    }
}

// ---------------------------------------------------------------- generated keys

/// A signing key made by gpg for one test, at a faked creation time: its armored secret key
/// (an absolute path, usable as [`Signing::Key`]'s `secret`) and its public keyring.
pub struct GeneratedKey {
    /// Holds the files; removed on drop.
    _dir: tempfile::TempDir,
    /// Upper-case fingerprint of the key that signs (the subkey when there is one).
    pub signing_fingerprint: String,
    pub secret: &'static str,
    pub keyring: PathBuf,
}

/// Makes an ed25519 key at gpg time `created` (`20200101T000000`) whose signing key expires
/// after `expire` (gpg's `2d`, `never`). With `signing_subkey`, the primary only certifies and
/// a signing subkey carries the expiry.
pub fn generate_key(uid: &str, created: &str, expire: &str, signing_subkey: bool) -> GeneratedKey {
    require_tool("gpg", "gpg");
    require_tool("gpg-agent", "gpg-agent");
    let dir = crate::common::tempdir();
    let home = dir.path().join("gnupg");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| -> Vec<u8> {
        let out = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--yes", "--quiet", "--pinentry-mode", "loopback"])
            .args(["--passphrase", "", "--faked-system-time", created])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run gpg");
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let (usage, primary_expire) = if signing_subkey {
        ("cert", "never")
    } else {
        ("sign", expire)
    };
    gpg(&["--quick-gen-key", uid, "ed25519", usage, primary_expire]);
    let fingerprints = |listing: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(listing)
            .lines()
            .filter_map(|l| l.strip_prefix("fpr:"))
            .filter_map(|rest| rest.split(':').find(|f| !f.is_empty()).map(str::to_owned))
            .collect()
    };
    let primary = fingerprints(&gpg(&["--with-colons", "--list-keys", uid]))[0].clone();
    if signing_subkey {
        gpg(&["--quick-add-key", &primary, "ed25519", "sign", expire]);
    }
    let signing_fingerprint = fingerprints(&gpg(&["--with-colons", "--list-keys", uid]))
        .pop()
        .unwrap();
    let secret = dir.path().join("key.sec.asc");
    std::fs::write(&secret, gpg(&["--armor", "--export-secret-keys", uid])).unwrap();
    let keyring = dir.path().join("keyring.gpg");
    std::fs::write(&keyring, gpg(&["--export", uid])).unwrap();
    GeneratedKey {
        signing_fingerprint,
        secret: Box::leak(secret.to_str().unwrap().to_owned().into_boxed_str()),
        keyring,
        _dir: dir,
    }
}

impl GeneratedKey {
    /// Signing with this key at gpg time `at` (`fixtures().join(secret)` keeps the absolute path).
    pub fn signing_at(&self, at: &'static str) -> Signing {
        Signing::Key {
            secret: self.secret,
            faked_time: Some(at),
            digest: None,
        }
    }
}

/// Serves the suite directory `from` of a built repository as `to` as well (a mirror that
/// answers a request for one suite with another suite's signed files).
pub fn serve_suite_as(repo: &Repo, from: &str, to: &str) {
    let dists = repo.root().join("dists");
    let status = Command::new("cp")
        .arg("-r")
        .arg(dists.join(from))
        .arg(dists.join(to))
        .status()
        .expect("run cp");
    assert!(status.success());
}

/// A service package: its postinst adds its user from its sysusers.d file and installs its
/// `/usr/bin/tool-NAME` as the `tool` alternative at `priority`.
pub fn service_deb(name: &'static str, priority: u32) -> TestDeb {
    let mut d = TestDeb::new(name, "1").postinst(&format!(
        "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  systemd-sysusers\n  update-alternatives --install /usr/bin/tool tool /usr/bin/tool-{name} {priority}\nfi\n"
    ));
    d.items = vec![
        Item::Dir("./usr/"),
        Item::Dir("./usr/bin/"),
        Item::File(
            Box::leak(format!("./usr/bin/tool-{name}").into_boxed_str()),
            name.as_bytes().to_vec(),
            0o755,
        ),
        Item::Dir("./usr/lib/"),
        Item::Dir("./usr/lib/sysusers.d/"),
        Item::File(
            Box::leak(format!("./usr/lib/sysusers.d/{name}.conf").into_boxed_str()),
            format!("u {name} - \"{name}\" /var/lib/{name}\n").into_bytes(),
            0o644,
        ),
    ];
    d
}
