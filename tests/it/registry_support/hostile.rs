//! A hostile registry of the project's own: a loopback HTTP/1.1 server whose every answer is
//! chosen by the test (a closure from request to [`Reply`]), and which records every request it
//! receives with its `Authorization` header. Two of them on two ports are two origins, so a
//! test can check that no secret of one ever reaches the other.
//!
//! One request per connection (`Connection: close`), plain `std` threads, like the fault proxy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::fault_proxy::read_head;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub authorization: Option<String>,
    pub body_len: usize,
}

/// What the server answers.
pub enum Reply {
    /// A whole answer (`Content-Length` added).
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The head (with `Content-Length: announced`), `prefix` of the body, then nothing until the
    /// client gives up.
    Stall {
        status: u16,
        headers: Vec<(String, String)>,
        announced: u64,
        prefix: Vec<u8>,
    },
    /// A head without length, then body bytes for ever (until the client hangs up).
    Endless {
        status: u16,
        headers: Vec<(String, String)>,
    },
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: vec![],
            body: vec![],
        }
    }

    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn with(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        Reply::Full {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        }
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

pub struct HostileServer {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl HostileServer {
    /// Starts on 127.0.0.1, a port of its own. A TLS ClientHello is left unanswered (a port that
    /// accepts TCP but never completes a handshake) unless `answer_tls` — then it is answered as
    /// Go's HTTP server does, which tells the client at once that this port is plain HTTP.
    pub fn start(
        answer_tls: bool,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (handler, seen, stop) = (handler.clone(), seen2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, answer_tls, &*handler, &seen, &stop);
                });
            }
        });
        HostileServer { port, seen, stop }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every `Authorization` header received.
    pub fn authorizations(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| s.authorization)
            .collect()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Reads (and drops) a request body: `Content-Length` or chunked. Returns its length.
fn read_body(r: &mut BufReader<TcpStream>, head: &[String]) -> std::io::Result<usize> {
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut total = 0;
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            std::io::copy(&mut r.take(n as u64 + 2), &mut std::io::sink())?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }
    let len: u64 = header(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut r.take(len), &mut std::io::sink()).map(|n| n as usize)
}

fn write_head(
    c: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    length: Option<u64>,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    if let Some(n) = length {
        out += &format!("Content-Length: {n}\r\n");
    }
    out += "Connection: close\r\n\r\n";
    c.write_all(out.as_bytes())
}

/// Holds a connection open, silent, until the client leaves or the server stops.
fn hold(c: &mut TcpStream, stop: &AtomicBool) {
    let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(300) {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn serve(
    mut client: TcpStream,
    answer_tls: bool,
    handler: &Handler,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    if reader.fill_buf()?.first() == Some(&0x16) {
        if answer_tls {
            client.write_all(
                b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
            )?;
            let _ = client.shutdown(Shutdown::Both);
        } else {
            hold(&mut client, stop);
        }
        return Ok(());
    }
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let mut parts = head.first().map(|l| l.split(' ')).into_iter().flatten();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let body_len = read_body(&mut reader, &head)?;
    let request = Seen {
        method,
        target,
        authorization: header(&head, "authorization").map(str::to_owned),
        body_len,
    };
    seen.lock().unwrap().push(request.clone());
    match handler(&request) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            write_head(&mut client, status, &headers, Some(body.len() as u64))?;
            if request.method != "HEAD" {
                client.write_all(&body)?;
            }
        }
        Reply::Stall {
            status,
            headers,
            announced,
            prefix,
        } => {
            write_head(&mut client, status, &headers, Some(announced))?;
            client.write_all(&prefix)?;
            client.flush()?;
            hold(&mut client, stop);
        }
        Reply::Endless { status, headers } => {
            write_head(&mut client, status, &headers, None)?;
            let block = vec![b' '; 64 << 10];
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(120) {
                client.write_all(&block)?;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// A child process's outcome, how long it took and its peak resident memory.
pub struct Bounded {
    pub output: std::process::Output,
    pub elapsed: Duration,
    /// VmHWM of the child in KiB, sampled while it ran (the peak so far at each sample).
    pub peak_rss_kib: u64,
}

/// Runs `cmd` to completion, sampling its peak RSS from /proc; kills it (by PID) and panics if it
/// runs past `limit`.
pub fn run_bounded(cmd: &mut std::process::Command, limit: Duration) -> Bounded {
    use std::process::Stdio;
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    // Drain the pipes in threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?}: a hang; stderr so far:\n{}",
                String::from_utf8_lossy(&err_t.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Bounded {
        output: std::process::Output {
            status,
            stdout: out_t.join().unwrap(),
            stderr: err_t.join().unwrap(),
        },
        elapsed: start.elapsed(),
        peak_rss_kib: peak,
    }
}
