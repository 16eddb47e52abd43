//! The one TLS set-up of our own HTTPS clients: provider APIs, lead targets, the OIDC
//! issuer's JWKS (all through [`crate::egress`]) and SMTP ([`crate::leads`]'s `email`).
//!
//! rustls with the aws-lc-rs provider (the one the AWS SDK uses) and Mozilla's root
//! programme compiled in (`webpki-roots`), built once per process and shared: every
//! client's verifier holds the same root store. Before, each client read the platform
//! store (~150 files of `/etc/ssl/certs`, 2–3 ms apiece) while the function started; see
//! docs/benchmarks.md.
//!
//! What it means for custom CAs: these clients trust the public roots of the
//! `webpki-roots` release in `Cargo.lock`, not a CA installed on the host. Everything
//! they call is on the public internet (the SSRF guard refuses private targets in AWS),
//! so a private CA only matters on a laptop whose traffic passes an intercepting proxy, or
//! for a lead target behind a company CA on the dev server: neither is served. The AWS
//! SDK's client keeps the platform store (the SDK reads it once per process), so an
//! emulator or endpoint with a host-installed CA still works.

use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};

/// The shared client set-up (`None` only if rustls refused its own defaults, when the
/// caller keeps its library's default).
pub fn client_config() -> Option<ClientConfig> {
    static CONFIG: OnceLock<Option<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let config = with_roots(public_roots());
            if config.is_none() {
                tracing::warn!("the shared TLS set-up could not be built; clients use their own");
            }
            config
        })
        .clone()
}

/// Mozilla's roots as compiled in: no file is read.
fn public_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn with_roots(roots: RootCertStore) -> Option<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A self-signed certificate for `localhost` and 127.0.0.1 and its key, made for these
    /// tests only (`openssl req -x509 … -days 36500`); no public CA signed it.
    const CERT: &[u8] = include_bytes!("../tests/tls/localhost.cert.pem");
    const KEY: &[u8] = include_bytes!("../tests/tls/localhost.key.pem");

    /// An HTTPS server on loopback answering every request `200 ok`, with [`CERT`].
    async fn https_server() -> String {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(CERT).unwrap()],
                PrivateKeyDer::from_pem_slice(KEY).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        format!("https://localhost:{port}/")
    }

    fn client(config: ClientConfig) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_shared_set_up_verifies_against_the_public_roots_only() {
        let url = https_server().await;
        let refused = client(client_config().unwrap())
            .get(&url)
            .send()
            .await
            .unwrap_err();
        let chain = format!("{:?}", refused);
        assert!(
            chain.contains("UnknownIssuer"),
            "a certificate no public CA signed must be refused: {chain}"
        );

        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(CERT).unwrap())
            .unwrap();
        let answer = client(with_roots(roots).unwrap())
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), "ok");
    }

    #[test]
    fn the_roots_are_compiled_in() {
        assert!(public_roots().len() > 100);
        assert!(client_config().is_some());
    }
}
