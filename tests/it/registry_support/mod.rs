//! Test harness: real `docker-registry` processes on loopback ports (plain, htpasswd, TLS, bearer
//! token), test images written by hand as OCI layouts, and skopeo as the independent checker.

pub mod fault_proxy;
pub mod hostile;
pub mod token_server;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stevedore::digest::Digest;
use stevedore::oci::names as media_types;
use stevedore::registry::{BlobRef, ImageToPush, RawManifest};

pub const USER: &str = "testuser";
/// Distinctive so tests can grep every error and log line for it.
pub const PASSWORD: &str = "s3cr3t-Pa55word-never-printed";

/// Fails (never skips) when a tool is missing, naming the package to install.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is needed by the registry tests: apt-get install -y {package}"
    );
}

pub fn require_all() {
    require_tool("docker-registry", "docker-registry");
    require_tool("skopeo", "skopeo");
    require_tool("htpasswd", "apache2-utils");
    require_tool("openssl", "openssl");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    None,
    Htpasswd,
    Tls,
    /// TLS with one self-signed certificate made as environment.md does (`openssl req -x509`,
    /// which marks it CA:TRUE), no auth.
    TlsSelfSigned,
    Token,
}

/// A running registry; killed by PID when dropped.
pub struct TestRegistry {
    child: Child,
    pub port: u16,
    pub auth: Auth,
    pub dir: tempfile::TempDir,
    /// CA certificate (PEM) for TLS registries.
    pub ca_file: Option<PathBuf>,
    pub token: Option<token_server::TokenServer>,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestRegistry {
    pub fn start(auth: Auth) -> TestRegistry {
        require_all();
        let dir = crate::common::tempdir();
        let d = dir.path();
        let port = free_port();
        let mut extra = String::new();
        let mut ca_file = None;
        let mut token = None;
        if matches!(auth, Auth::Htpasswd | Auth::Tls) {
            run(Command::new("htpasswd")
                .arg("-Bbc")
                .arg(d.join("htpasswd"))
                .arg(USER)
                .arg(PASSWORD)
                .stderr(Stdio::piped()));
            extra += &format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                d.join("htpasswd").display()
            );
        }
        let mut tls = String::new();
        if matches!(auth, Auth::Tls | Auth::TlsSelfSigned) {
            let (ca, cert, key) = if auth == Auth::Tls {
                make_server_cert(d)
            } else {
                make_self_signed(d)
            };
            tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            ca_file = Some(ca);
        }
        if auth == Auth::Token {
            let ts = token_server::TokenServer::start(d, USER, PASSWORD);
            extra += &format!(
                "auth:\n  token:\n    realm: {}\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
                ts.realm(),
                ts.cert_pem.display()
            );
            token = Some(ts);
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: not-a-secret-test-only\n{tls}{extra}",
            data = d.join("data").display()
        );
        std::fs::write(d.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(d.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (apt-get install -y docker-registry)");
        let reg = TestRegistry {
            child,
            port,
            auth,
            dir,
            ca_file,
            token,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "docker-registry did not listen on {} within 15 s; log:\n{}",
            self.port,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn reference(&self, repo_tag: &str) -> stevedore::registry::Reference {
        format!("{}/{repo_tag}", self.host()).parse().unwrap()
    }

    fn skopeo_flags(&self, prefix: &str) -> Vec<String> {
        let mut v = vec![];
        match self.auth {
            Auth::Tls | Auth::TlsSelfSigned => {
                let certs = self.dir.path().join("certs.d");
                v.push(format!("--{prefix}cert-dir={}", certs.display()));
            }
            _ => v.push(format!("--{prefix}tls-verify=false")),
        }
        if !matches!(self.auth, Auth::None | Auth::TlsSelfSigned) {
            v.push(format!("--{prefix}creds={USER}:{PASSWORD}"));
        }
        v
    }

    /// `skopeo inspect --raw`: the manifest bytes as the registry serves them.
    pub fn skopeo_raw(&self, repo_ref: &str) -> Vec<u8> {
        run(Command::new("skopeo")
            .arg("inspect")
            .arg("--raw")
            .args(self.skopeo_flags(""))
            .arg(format!("docker://{}/{repo_ref}", self.host())))
    }

    /// `skopeo inspect` (parsed), which also resolves an index to the host platform.
    pub fn skopeo_inspect(&self, repo_ref: &str) -> serde_json::Value {
        serde_json::from_slice(&run(Command::new("skopeo")
            .arg("inspect")
            .args(self.skopeo_flags(""))
            .arg(format!("docker://{}/{repo_ref}", self.host()))))
        .unwrap()
    }

    /// Does the tag exist? (skopeo, independent of our client)
    pub fn skopeo_has(&self, repo_ref: &str) -> bool {
        Command::new("skopeo")
            .arg("inspect")
            .arg("--raw")
            .args(self.skopeo_flags(""))
            .arg(format!("docker://{}/{repo_ref}", self.host()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// `skopeo copy docker://… oci:DEST:copied` — pulls every blob and verifies its digest.
    pub fn skopeo_copy_to_oci(&self, repo_ref: &str, dest: &Path) {
        run(Command::new("skopeo")
            .arg("copy")
            .arg("--quiet")
            .args(self.skopeo_flags("src-"))
            .arg(format!("docker://{}/{repo_ref}", self.host()))
            .arg(format!("oci:{}:copied", dest.display())));
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (webpki refuses a CA certificate as a
/// server's own, so a single self-signed certificate would not do).
fn make_server_cert(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-days", "2", "-subj", "/CN=stevedore-test-ca"])
        .arg("-keyout")
        .arg(d.join("ca.key"))
        .arg("-out")
        .arg(d.join("ca.pem"))
        .stderr(Stdio::piped()));
    run(Command::new("openssl")
        .arg("req")
        .args(ec)
        .args(["-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(d.join("server.key"))
        .arg("-out")
        .arg(d.join("server.csr"))
        .stderr(Stdio::piped()));
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
        .arg("-in")
        .arg(d.join("server.csr"))
        .arg("-CA")
        .arg(d.join("ca.pem"))
        .arg("-CAkey")
        .arg(d.join("ca.key"))
        .arg("-extfile")
        .arg(d.join("ext.cnf"))
        .arg("-out")
        .arg(d.join("server.pem"))
        .stderr(Stdio::piped()));
    std::fs::create_dir_all(d.join("certs.d")).unwrap();
    std::fs::copy(d.join("ca.pem"), d.join("certs.d/ca.crt")).unwrap();
    (d.join("ca.pem"), d.join("server.pem"), d.join("server.key"))
}

/// environment.md's recipe: one self-signed certificate for 127.0.0.1 (CA:TRUE by openssl's default).
fn make_self_signed(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(d.join("self.key"))
        .arg("-out")
        .arg(d.join("self.pem"))
        .stderr(Stdio::piped()));
    std::fs::create_dir_all(d.join("certs.d")).unwrap();
    std::fs::copy(d.join("self.pem"), d.join("certs.d/ca.crt")).unwrap();
    (d.join("self.pem"), d.join("self.pem"), d.join("self.key"))
}

/// xorshift64*: reproducible test bytes and fault schedules without a rand dependency.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// diff_id of every layer made so far, so a child image's config can list its base's.
static DIFF_IDS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<Digest, String>>> =
    std::sync::LazyLock::new(Default::default);

fn base_diff_ids(base: &[BlobRef]) -> Vec<String> {
    let m = DIFF_IDS.lock().unwrap();
    base.iter().map(|b| m[&b.digest].clone()).collect()
}

/// A test image written as an OCI layout (so skopeo can copy it too).
pub struct TestImage {
    pub image: ImageToPush,
    pub manifest_digest: Digest,
    pub layers: Vec<BlobRef>,
}

pub fn write_blob(layout: &Path, bytes: &[u8], media_type: &str) -> BlobRef {
    let digest = Digest::of(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(digest.hex());
    std::fs::write(&path, bytes).unwrap();
    BlobRef {
        digest,
        size: bytes.len() as u64,
        media_type: media_type.to_owned(),
        path,
    }
}

fn descriptor(b: &BlobRef) -> serde_json::Value {
    json!({"mediaType": b.media_type, "digest": b.digest.to_string(), "size": b.size})
}

/// An image with `base` layers (shared with another image) plus random layers of `sizes` bytes.
pub fn make_image(
    layout: &Path,
    seed: u64,
    base: &[BlobRef],
    sizes: &[usize],
    arch: &str,
) -> TestImage {
    let mut rng = Rng::new(seed);
    let mut layers: Vec<BlobRef> = base.to_vec();
    let mut diff_ids: Vec<String> = base_diff_ids(base);
    for &n in sizes {
        // Real gzip: skopeo sniffs layer contents and would compress "uncompressed" random bytes,
        // changing digests and defeating the comparison.
        let raw = rng.bytes(n);
        diff_ids.push(Digest::of(&raw).to_string());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let b = write_blob(
            layout,
            &gz.finish().unwrap(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        );
        DIFF_IDS
            .lock()
            .unwrap()
            .insert(b.digest.clone(), diff_ids.last().unwrap().clone());
        layers.push(b);
    }
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": [format!("SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = write_blob(
        layout,
        &serde_json::to_vec(&config).unwrap(),
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": descriptor(&config),
        "layers": layers.iter().map(descriptor).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let mblob = write_blob(layout, &bytes, media_types::OCI_MANIFEST);
    write_layout_index(layout, &mblob, None);
    let mut blobs = vec![config];
    blobs.extend(layers.iter().cloned());
    TestImage {
        image: ImageToPush::new(
            RawManifest {
                bytes,
                media_type: media_types::OCI_MANIFEST.into(),
            },
            blobs,
        ),
        manifest_digest: mblob.digest,
        layers,
    }
}

pub fn write_layout_index(layout: &Path, top: &BlobRef, platform: Option<serde_json::Value>) {
    let mut d = descriptor(top);
    d["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    if let Some(p) = platform {
        d["platform"] = p;
    }
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [d]})).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}
