//! The JDK → Tomcat → WAR images, end to end from the real mirrors: locked, built into an OCI
//! layout, unpacked by umoci, and run the way the image config says (entrypoint, env, user,
//! workdir from umoci's runtime config) in a chroot. Tomcat must serve the WAR's JSP and
//! servlets as its unprivileged user, Java must see the CA certificates, and dpkg and apt must
//! work inside the image. Needs root, umoci and the mirrors (`.ci/run` installs the tools).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry_support::free_port;
use common::*;

pub(crate) fn in_image(rootfs: &Path, script: &str) -> (bool, String) {
    let out = chroot_command(
        rootfs,
        None,
        &["/bin/sh".into(), "-c".into(), script.into()],
    )
    .output()
    .unwrap();
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// Stops the server by PID: `unshare --fork` ignores SIGTERM and `chroot --userspec` clears
/// the parent-death signal, so its children are killed first, then unshare itself.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        if let Ok(out) = Command::new("pgrep").args(["-P", &pid]).output() {
            for child in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", child]).status();
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.0 GET on loopback: status code and body.
pub(crate) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((code, body.to_string()))
}

/// What the image's config says to run, as umoci turned it into a runtime config.
pub(crate) struct Process {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
}

pub(crate) fn process(bundle: &Path) -> Process {
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let p = &cfg["process"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    Process {
        args: strings(&p["args"]),
        env: strings(&p["env"]),
        cwd: p["cwd"].as_str().unwrap().to_string(),
        uid: p["user"]["uid"].as_u64().unwrap(),
        gid: p["user"]["gid"].as_u64().unwrap(),
    }
}

/// Runs the image's own command `p` in the chroot as its user, with Tomcat's HTTP connector
/// (`server_xml`) moved to a free port and its shutdown port off, logging to `log_path`, and
/// waits up to 120 s for `/` to answer 200. Returns the server (stopped when dropped), its port
/// and the page.
pub(crate) fn serve(
    rootfs: &Path,
    server_xml: &Path,
    p: &Process,
    log_path: &Path,
) -> (Server, u16, String) {
    let port = free_port();
    let xml = std::fs::read_to_string(server_xml).unwrap();
    assert!(xml.contains("port=\"8080\""), "{xml}");
    let xml = xml
        .replace("port=\"8080\"", &format!("port=\"{port}\""))
        .replace("port=\"8005\"", "port=\"-1\"");
    std::fs::write(server_xml, xml).unwrap();
    let mut args: Vec<String> = vec!["env".into(), "-i".into()];
    args.extend(p.env.iter().cloned());
    // The test's own JVM setting, not the image's: only the client JIT compiler. Tomcat serves the
    // same pages either way; this one startup and a few first requests are all the JVM runs, and
    // the optimising compiler's threads were over half of its CPU (Tomcat 10 on Java 17: 1.9 vs
    // 3.4-4.4 CPU-s until / is served and the pages fetched).
    args.push("JAVA_TOOL_OPTIONS=-XX:TieredStopAtLevel=1".into());
    args.extend([
        "/bin/sh".into(),
        "-c".into(),
        format!("cd '{}' && exec \"$@\"", p.cwd),
        "sh".into(),
    ]);
    args.extend(p.args.iter().cloned());
    let log = std::fs::File::create(log_path).unwrap();
    let child = chroot_command(rootfs, Some(&format!("{}:{}", p.uid, p.gid)), &args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Some((200, body)) = http_get(port, "/") {
            eprintln!("Tomcat served / after {:?}", started.elapsed());
            return (server, port, body);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    panic!("Tomcat did not serve / in 120 s:\n{log}");
}

struct Expect<'a> {
    recipe: &'a str,
    tag: &'a str,
    /// The Tomcat config dir whose server.xml gets the test's port.
    conf: &'a str,
    tomcat_user: &'a str,
    java_major: &'a str,
    jvm_dir: &'a str,
    /// Script commands the coverage report must show as reproduced.
    reproduced: &'a [&'a str],
    /// Packages whose scripts must have nothing left uncovered.
    fully_covered: &'a [&'a str],
}

fn build_run_and_check(e: &Expect<'_>, all_recipes: &[&str]) {
    require_tool("umoci", "umoci");
    require_tool("unshare", "util-linux");
    require_tool("pgrep", "procps");
    require_root("umoci unpack keeps owners, and chroot needs root");
    let t = tempdir();
    recipes_copy(t.path(), all_recipes);
    let recipe = t.path().join("recipes").join(e.recipe);
    let cache = t.path().join("cache");
    warm_cache(&[e.recipe], &cache);
    let out = stevedore(&cache, &["lock", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lock: toml::Table = std::fs::read_to_string(recipe.with_extension("lock"))
        .unwrap()
        .parse()
        .unwrap();
    let locked: usize = lock["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["packages"].as_array().map_or(0, Vec::len))
        .sum();

    let layout = t.path().join("out");
    let out = stevedore(
        &cache,
        &[
            "build",
            "--locked",
            path_str(&recipe),
            "-o",
            &format!("oci:{}", layout.display()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("setup: maintainer scripts of"),
        "build prints the coverage summary: {}",
        stderr(&out)
    );
    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:{}", layout.display(), e.tag), &bundle);
    let rootfs = bundle.join("rootfs");

    // Java through the alternatives symlink, dpkg's view of every package, apt inside.
    let (ok, text) = in_image(
        &rootfs,
        "readlink -f /usr/bin/java && /usr/bin/java -version 2>&1 && echo JAVA-OK",
    );
    assert!(ok && text.contains("JAVA-OK"), "{text}");
    assert!(
        text.contains(&format!("{}/", e.jvm_dir)),
        "/usr/bin/java → {}: {text}",
        e.jvm_dir
    );
    assert!(
        text.contains(&format!("version \"{}", e.java_major)),
        "{text}"
    );
    let (ok, text) = in_image(&rootfs, "dpkg -l | grep -c '^ii'");
    assert!(ok, "{text}");
    assert_eq!(
        text.trim().parse::<usize>().unwrap(),
        locked,
        "dpkg -l lists every locked package"
    );
    std::fs::copy("/etc/resolv.conf", rootfs.join("etc/resolv.conf")).unwrap();
    let (ok, text) = in_image(
        &rootfs,
        "apt-get update -qq >/dev/null && apt-get install -s curl",
    );
    assert!(
        ok && text.contains("Inst curl"),
        "apt resolves inside the image: {text}"
    );

    // Run the image's own command as its configured user, on a port of the test's.
    let p = process(&bundle);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with(&format!("{}:", e.tomcat_user)))
            .map(|l| l.split(':').nth(2).unwrap().parse::<u64>().unwrap()),
        Some(p.uid),
        "config.user resolves to the {} account",
        e.tomcat_user
    );
    assert_ne!(p.uid, 0);
    let server_xml = rootfs
        .join(e.conf.trim_start_matches('/'))
        .join("server.xml");
    let log_path = t.path().join("tomcat.log");
    let (_server, port, page) = serve(&rootfs, &server_xml, &p, &log_path);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        page.contains(&format!("hello from jsp on java {}", e.java_major)),
        "{page}"
    );
    let (code, body) = http_get(port, "/hello").unwrap();
    assert_eq!(
        (code, body.trim()),
        (200, "hello from servlet"),
        "{}",
        log()
    );
    let (code, body) = http_get(port, "/trust").unwrap();
    assert_eq!(code, 200, "{body}");
    let anchors: i64 = body
        .trim()
        .strip_prefix("trust anchors: ")
        .unwrap_or_else(|| panic!("{body}"))
        .parse()
        .unwrap();
    assert!(anchors > 100, "Java sees {anchors} trust anchors");
    assert!(
        !log().contains("SEVERE"),
        "Tomcat logged errors:\n{}",
        log()
    );

    // The coverage report: what Java and Tomcat need is reproduced.
    let out = stevedore(&cache, &["plan", "--scripts", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    for needed in e.reproduced {
        let line = report
            .lines()
            .find(|l| l.contains(needed))
            .unwrap_or_else(|| panic!("no `{needed}` in the report:\n{report}"));
        assert!(line.contains("reproduced"), "{line}");
    }
    // The packages the image exists for have no command left uncovered.
    let mut section = "";
    for line in report.lines() {
        if !line.starts_with(' ') {
            section = line.split_whitespace().next().unwrap_or("");
        } else if line.contains("NOT COVERED") {
            assert!(
                !e.fully_covered.contains(&section),
                "{section}: {line}\n{report}"
            );
        }
    }
}

#[test]
fn webapp_on_bookworm_tomcat10_serves_the_war() {
    build_run_and_check(
        &Expect {
            recipe: "webapp.toml",
            tag: "latest",
            conf: "/etc/tomcat10",
            tomcat_user: "tomcat",
            java_major: "17",
            jvm_dir: "/usr/lib/jvm/java-17-openjdk-amd64",
            reproduced: &[
                "update-alternatives --install /usr/bin/java java",
                "systemd-sysusers",
                "ucf --debconf-ok --three-way /usr/share/tomcat10/etc/server.xml",
                "chown root:tomcat /etc/tomcat10/server.xml",
            ],
            fully_covered: &[
                "openjdk-17-jre-headless",
                "tomcat10",
                "ca-certificates",
                "java-common",
                "base-passwd",
            ],
        },
        &[
            "debian-bookworm.toml",
            "openjdk.toml",
            "tomcat.toml",
            "webapp.toml",
        ],
    );
}

#[test]
fn classic_stack_xenial_tomcat7_serves_the_javax_war() {
    build_run_and_check(
        &Expect {
            recipe: "ubuntu-xenial-tomcat7.toml",
            tag: "latest",
            conf: "/etc/tomcat7",
            tomcat_user: "tomcat7",
            java_major: "1.8",
            jvm_dir: "/usr/lib/jvm/java-8-openjdk-amd64",
            reproduced: &[
                "update-alternatives --install /usr/bin/java java",
                "adduser --system --home /usr/share/tomcat7",
                "chmod 775 /var/lib/tomcat7/webapps",
            ],
            fully_covered: &["openjdk-8-jre-headless", "base-passwd"],
        },
        &["ubuntu-xenial-tomcat7.toml"],
    );
}
