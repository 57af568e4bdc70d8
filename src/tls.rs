//! TLS setup shared by the two network clients (apt mirrors and registries).

use std::sync::OnceLock;

/// Installs ring as rustls' process-wide crypto provider, once. reqwest is built with
/// `rustls-no-provider` so aws-lc's slow C build stays out of the tree.
pub fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Err means another part of the program installed one first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
