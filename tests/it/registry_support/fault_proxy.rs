//! An HTTP/1.1 proxy in front of a registry that injects faults from a seeded schedule: 500, 503,
//! 429 with `Retry-After`, connections dropped mid-upload, answers lost after the registry acted,
//! and stalls. One request per connection (`Connection: close` both ways) keeps it simple.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Pass,
    Status500,
    Status503,
    TooMany,
    /// Forward the head and part of the body, then cut both connections.
    DropMidBody,
    /// Forward everything, let the registry act, then close without answering.
    DropAnswer,
    /// Read the request, then say nothing for a while.
    Stall,
    /// Forward part of the body, then stop reading for a while (a stuck upload).
    StallMidBody,
    /// 413 Payload Too Large (scripted only: a proxy's body cap).
    TooLarge,
    /// Forward with the query cut off (scripted only): turns a mount POST into a plain one, so
    /// the registry answers 202 with a session, as registries do when they will not mount.
    StripMount,
    /// Forward, adding `OCI-Chunk-Min-Length: 300000` to the answer (scripted only), as an
    /// S3-backed registry does.
    ChunkMin,
}

const FAULTS: [Fault; 7] = [
    Fault::StallMidBody,
    Fault::Status500,
    Fault::Status503,
    Fault::TooMany,
    Fault::DropMidBody,
    Fault::DropAnswer,
    Fault::Stall,
];

pub struct FaultProxy {
    pub port: u16,
    /// Faults injected, with the request line they hit.
    pub injected: Arc<Mutex<Vec<(Fault, String)>>>,
    /// Every request line seen.
    pub seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

struct Schedule {
    /// `(request-line prefix, fault)`: the front entry applies to the next request it matches;
    /// other requests pass. Once empty, the random schedule takes over.
    script: std::collections::VecDeque<(String, Fault)>,
    rng: Rng,
    percent: u64,
    stall: Duration,
}

impl FaultProxy {
    /// `percent` of requests get a fault picked uniformly from all kinds.
    pub fn start(upstream: u16, seed: u64, percent: u64, stall: Duration) -> FaultProxy {
        Self::scripted(upstream, vec![], seed, percent, stall)
    }

    /// `script` faults first (see [`Schedule::script`]), then the random schedule.
    pub fn scripted(
        upstream: u16,
        script: Vec<(&str, Fault)>,
        seed: u64,
        percent: u64,
        stall: Duration,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let injected = Arc::new(Mutex::new(vec![]));
        let seen = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let sched = Arc::new(Mutex::new(Schedule {
            script: script.into_iter().map(|(p, f)| (p.to_owned(), f)).collect(),
            rng: Rng::new(seed),
            percent,
            stall,
        }));
        let (inj, seen2, stop2) = (injected.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (sched, inj, seen) = (sched.clone(), inj.clone(), seen2.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, upstream, &sched, &inj, &seen);
                });
            }
        });
        FaultProxy {
            port,
            injected,
            seen,
            stop,
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads an HTTP head; returns its lines (without CRLF). Shared with the hostile server.
pub(super) fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = vec![];
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Ok(None);
        }
        let l = l.trim_end_matches(['\r', '\n']).to_owned();
        if l.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(l);
    }
}

/// The head with `Connection: close` instead of whatever it had.
fn rewrite(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for l in lines {
        if l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn content_length(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn respond(client: &mut TcpStream, status: &str, extra: &str) -> std::io::Result<()> {
    write!(
        client,
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
}

fn handle(
    mut client: TcpStream,
    upstream: u16,
    sched: &Mutex<Schedule>,
    injected: &Mutex<Vec<(Fault, String)>>,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    // A TLS ClientHello (the client probing for HTTPS): answer as Go's HTTP server does.
    if reader.fill_buf()?.first() == Some(&0x16) {
        client.write_all(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        )?;
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let len = content_length(&head);
    seen.lock()
        .unwrap()
        .push(head.first().cloned().unwrap_or_default());
    let (fault, cut, stall) = {
        let mut s = sched.lock().unwrap();
        let line = head.first().cloned().unwrap_or_default();
        let f = if let Some((prefix, f)) = s.script.front().cloned() {
            if line.starts_with(&prefix) {
                s.script.pop_front();
                f
            } else {
                Fault::Pass
            }
        } else if s.rng.below(100) < s.percent {
            FAULTS[s.rng.below(FAULTS.len() as u64) as usize]
        } else {
            Fault::Pass
        };
        let cut = if len > 0 { s.rng.below(len) } else { 0 };
        (f, cut, s.stall)
    };
    if fault != Fault::Pass {
        injected
            .lock()
            .unwrap()
            .push((fault, head.first().cloned().unwrap_or_default()));
    }
    let discard = |reader: &mut BufReader<TcpStream>| {
        std::io::copy(&mut reader.take(len), &mut std::io::sink()).map(|_| ())
    };
    match fault {
        Fault::Status500 => {
            discard(&mut reader)?;
            respond(&mut client, "500 Internal Server Error", "")
        }
        Fault::Status503 => {
            discard(&mut reader)?;
            respond(&mut client, "503 Service Unavailable", "")
        }
        Fault::TooMany => {
            discard(&mut reader)?;
            respond(&mut client, "429 Too Many Requests", "Retry-After: 1\r\n")
        }
        Fault::TooLarge => {
            discard(&mut reader)?;
            respond(&mut client, "413 Payload Too Large", "")
        }
        Fault::StallMidBody => {
            let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
            up.write_all(&rewrite(&head))?;
            std::io::copy(&mut (&mut reader).take(cut), &mut up)?;
            std::thread::sleep(stall);
            let _ = up.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
        Fault::Stall => {
            discard(&mut reader)?;
            std::thread::sleep(stall);
            Ok(())
        }
        Fault::DropMidBody if len > 0 => {
            let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
            up.write_all(&rewrite(&head))?;
            std::io::copy(&mut (&mut reader).take(cut), &mut up)?;
            let _ = up.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
        Fault::DropMidBody => {
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
        Fault::Pass | Fault::DropAnswer | Fault::StripMount | Fault::ChunkMin => {
            let mut head = head;
            if fault == Fault::StripMount {
                let mut parts: Vec<String> = head[0].split(' ').map(str::to_owned).collect();
                parts[1] = parts[1].split('?').next().unwrap().to_owned();
                head[0] = parts.join(" ");
            }
            let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
            up.write_all(&rewrite(&head))?;
            std::io::copy(&mut (&mut reader).take(len), &mut up)?;
            let mut upr = BufReader::new(up);
            let Some(resp_head) = read_head(&mut upr)? else {
                return Ok(());
            };
            let mut rest = vec![];
            upr.read_to_end(&mut rest)?;
            if fault == Fault::DropAnswer {
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            let mut resp_head = resp_head;
            if fault == Fault::ChunkMin {
                resp_head.push("OCI-Chunk-Min-Length: 300000".into());
            }
            client.write_all(&rewrite(&resp_head))?;
            client.write_all(&rest)?;
            let _ = client.shutdown(Shutdown::Both);
            Ok(())
        }
    }
}
