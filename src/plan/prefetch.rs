//! Cold builds: every locked package of the recipe is downloaded and decompressed into the
//! cache in the background, largest first, while the plan lays out and sets up the layers one
//! by one. The base layer's setup then overlaps the JDK's download, and xz decoding of one
//! package overlaps the download of the next.
//!
//! The foreground never depends on it: it fetches and unpacks what it needs itself, and the
//! store's per-file locks make it wait for, rather than repeat, work the prefetch has under
//! way. Errors here are only logged; the foreground reports them with their context.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures_util::StreamExt;

use crate::apt::{Fetcher, LockedPackage, fetch};
use crate::cache::Cache;

/// The background work; dropping it stops starting new work and waits for what is running.
pub struct Prefetch {
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prefetch {
    pub fn start(packages: Vec<LockedPackage>, cache: &Cache) -> Prefetch {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cancel);
        let cache = cache.clone();
        let thread = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || run(packages, &cache, &flag))
            .ok();
        Prefetch { cancel, thread }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut packages: Vec<LockedPackage>, cache: &Cache, cancel: &AtomicBool) {
    // Largest first: the JDK's 40 MB .deb takes ~2 s to decode alone, and the layer it goes
    // in cannot be laid out before that; the small base packages fill the gaps around it (and
    // the foreground fetches the base layer's own packages in parallel anyway).
    packages.sort_by_key(|p| std::cmp::Reverse(p.size));
    let fetcher = match Fetcher::new(&cache.apt_dir()) {
        Ok(f) => f,
        Err(e) => return tracing::debug!("prefetch: {e}"),
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = std::sync::mpsc::channel::<(LockedPackage, PathBuf)>();
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let next = rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((p, deb))) = next else { return };
                    if cancel.load(Ordering::Relaxed) {
                        continue; // drain without working
                    }
                    tracing::trace!("prefetch: unpacking {}", p.name);
                    if let Err(e) = crate::rootfs::spool_deb(&p.name, &p.sha256, &deb, cache) {
                        tracing::debug!("prefetch: {e}");
                    }
                    tracing::trace!("prefetch: unpacked {}", p.name);
                }
            });
        }
        fetch::block_on(async {
            futures_util::stream::iter(packages)
                .take_while(|_| std::future::ready(!cancel.load(Ordering::Relaxed)))
                .map(|p| {
                    let fetcher = &fetcher;
                    async move {
                        let result = fetcher.fetch(&p.wanted()).await;
                        (p, result)
                    }
                })
                // In order, so packages reach decompression largest first.
                .buffered(6)
                .for_each(|(p, result)| {
                    match result {
                        Ok(deb) => {
                            tracing::trace!("prefetch: downloaded {}", p.name);
                            let _ = tx.send((p, deb));
                        }
                        Err(e) => tracing::debug!("prefetch: {e}"),
                    }
                    std::future::ready(())
                })
                .await;
        });
        drop(tx);
    });
}
