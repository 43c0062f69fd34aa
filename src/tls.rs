//! The root certificates every HTTPS client trusts: Mozilla's roots compiled
//! in (`webpki-root-certs`), plus the certificates in the PEM file that
//! `SSL_CERT_FILE` names, for a private CA (a self-hosted Elasticsearch, a
//! TLS-inspecting proxy). One set, built once per process, given to reqwest
//! (Docker Hub, Elasticsearch) and to the AWS SDK's client (SSM, S3).
//!
//! Why not the system store: reading it (`/etc/ssl/certs`, a bundle and a
//! directory of ~290 files on Debian) costs ~3 ms of CPU, and reqwest and the
//! SDK each read it at start. That was two thirds of the function's init CPU,
//! more than a 128 MB Lambda's share allows per 100 ms. The compiled-in roots
//! cost nothing to load; they change with a rebuild (`cargo update -p
//! webpki-root-certs`), not with the image. `SSL_CERT_DIR` is not read.

use aws_sdk_ssm::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The variable naming a PEM file of extra root certificates (OpenSSL's name).
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// Why the trusted roots or the HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read SSL_CERT_FILE {}: {source} (point it at a PEM file of CA certificates, or unset it)",
        path.display()
    )]
    CertFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "SSL_CERT_FILE {} is not valid PEM: {source} (it must hold `-----BEGIN CERTIFICATE-----` blocks)",
        path.display()
    )]
    CertFileNotPem { path: PathBuf, source: pem::Error },
    #[error(
        "SSL_CERT_FILE {} holds no certificate (it must hold `-----BEGIN CERTIFICATE-----` blocks)",
        path.display()
    )]
    CertFileEmpty { path: PathBuf },
    #[error(
        "SSL_CERT_FILE {}: certificate {number} cannot be a root of trust: {source}",
        path.display()
    )]
    CertUnusable {
        path: PathBuf,
        /// 1-based, in file order.
        number: usize,
        source: rustls::Error,
    },
    #[error("cannot build the HTTPS client for Docker Hub and Elasticsearch: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot build the HTTPS client for SSM and S3: {0}")]
    AwsClient(#[source] aws_smithy_http_client::HttpClientError),
}

/// The set of trusted root certificates (DER), compiled-in roots first.
#[derive(Debug, Clone)]
pub struct TrustedRoots {
    certs: Vec<CertificateDer<'static>>,
    added: usize,
}

impl TrustedRoots {
    /// The process's roots: built from `SSL_CERT_FILE` on the first call and
    /// kept, so every client shares one set. An error is not kept: the next
    /// call tries again.
    pub fn shared() -> Result<&'static TrustedRoots, TlsError> {
        static SHARED: OnceLock<TrustedRoots> = OnceLock::new();
        if let Some(roots) = SHARED.get() {
            return Ok(roots);
        }
        let file = std::env::var_os(SSL_CERT_FILE).filter(|value| !value.is_empty());
        let roots = Self::with_cert_file(file.as_deref().map(Path::new))?;
        if let Some(path) = file {
            tracing::info!(
                ssl_cert_file = %Path::new(&path).display(),
                added = roots.added,
                "trusting extra root certificates from SSL_CERT_FILE"
            );
        }
        Ok(SHARED.get_or_init(|| roots))
    }

    /// Mozilla's roots as compiled in, and nothing else.
    pub fn compiled_in() -> Self {
        Self {
            certs: webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec(),
            added: 0,
        }
    }

    /// The compiled-in roots plus every certificate of `cert_file` (PEM), if
    /// given. Each must be usable as a trust anchor: a bad one is an error
    /// naming its place in the file, rather than a CA silently not trusted.
    pub fn with_cert_file(cert_file: Option<&Path>) -> Result<Self, TlsError> {
        let mut roots = Self::compiled_in();
        let Some(path) = cert_file else {
            return Ok(roots);
        };
        let text = std::fs::read(path).map_err(|source| TlsError::CertFileUnreadable {
            path: path.to_owned(),
            source,
        })?;
        let extra = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::CertFileNotPem {
                path: path.to_owned(),
                source,
            })?;
        if extra.is_empty() {
            return Err(TlsError::CertFileEmpty {
                path: path.to_owned(),
            });
        }
        let mut check = rustls::RootCertStore::empty();
        for (index, cert) in extra.iter().enumerate() {
            check
                .add(cert.clone())
                .map_err(|source| TlsError::CertUnusable {
                    path: path.to_owned(),
                    number: index + 1,
                    source,
                })?;
        }
        roots.added = extra.len();
        roots.certs.extend(extra);
        Ok(roots)
    }

    /// How many roots there are in all.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Always false: the compiled-in roots are never empty.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// How many came from `SSL_CERT_FILE`.
    pub fn added(&self) -> usize {
        self.added
    }

    /// A reqwest builder that trusts these roots and only these (no system
    /// store is read).
    pub fn reqwest_builder(&self) -> Result<reqwest::ClientBuilder, TlsError> {
        let certs = self
            .certs
            .iter()
            .map(|cert| reqwest::Certificate::from_der(cert))
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::Client)?;
        Ok(reqwest::Client::builder().tls_certs_only(certs))
    }

    /// The AWS SDK's HTTPS client (hyper 1, rustls with aws-lc) trusting these
    /// roots and only these; set it on the `SdkConfig` and every client built
    /// from it (SSM, S3) shares it. Otherwise as the SDK's default client: the
    /// proxy from `HTTPS_PROXY`/`NO_PROXY`, the SDK's timeouts and sleep.
    pub fn aws_http_client(&self) -> Result<SharedHttpClient, TlsError> {
        // The SDK's trust store takes PEM only.
        let trust_store = TrustStore::empty().with_pem_certificate(pem_bundle(&self.certs));
        let context = TlsContext::builder()
            .with_trust_store(trust_store)
            .build()
            .map_err(TlsError::AwsClient)?;
        // `build_https()` would drop the proxy settings, so the connector is
        // built as aws-smithy-runtime's `default_https_client` builds it
        // (through the same public but doc-hidden `build_with_connector_fn`),
        // with only the trust store changed. Connectors are cached per
        // setting; each one parses the bundle again (~0.4 ms).
        Ok(
            Builder::new().build_with_connector_fn(move |settings, components| {
                let mut connector = ConnectorBuilder::default()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::AwsLc,
                    ))
                    .tls_context(context.clone());
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            }),
        )
    }
}

/// The certificates as one PEM text, 64 base64 characters a line.
fn pem_bundle(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    use base64::Engine as _;
    let mut out = Vec::with_capacity(certs.iter().map(|c| c.len() * 4 / 3 + 80).sum());
    for cert in certs {
        out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    out
}

/// The AWS SDK configuration of the process (SSM and S3 share it): the
/// standard environment and credentials chain, with an HTTPS client that
/// trusts [`TrustedRoots::shared`] rather than reading the system store again.
pub async fn aws_sdk_config() -> Result<aws_config::SdkConfig, TlsError> {
    let http = TrustedRoots::shared()?.aws_http_client()?;
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::sync::Arc;

    // A private CA and a server certificate it signed for localhost and
    // 127.0.0.1 (P-256, valid 2026–2126), made with openssl for these tests.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBpDCCAUugAwIBAgIUGVt8MG+M1bYq8kBXbEfhVM+rtxwwCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUZG9ja2VyLXB1bGxzIHRlc3QgQ0EwIBcNMjYxMTI4MDkwOTQ2
WhgPMjEyNjExMDQwOTA5NDZaMB8xHTAbBgNVBAMMFGRvY2tlci1wdWxscyB0ZXN0
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEz6FTEJWx9w1xFxea8JWN95Bv
P45lhN7U0NMePP8nGHZXUCWD6AuV/fDSEJEEPpwhirS8yNiV2zNZQRfI50ql6KNj
MGEwHQYDVR0OBBYEFAa8wVh9qVz+kBB2MOJ4gpP0em7qMB8GA1UdIwQYMBaAFAa8
wVh9qVz+kBB2MOJ4gpP0em7qMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQD
AgEGMAoGCCqGSM49BAMCA0cAMEQCIHPpjFeByjKgT+zQ6BOmBx6D61gWGg54KeWo
PtgWK+yfAiACeXPvp8dGsvRFk5X5RbRTJGqi+hbKQfzEuXBcefaDtw==
-----END CERTIFICATE-----
";
    const TEST_SERVER_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIByjCCAXCgAwIBAgIULQ/MQd/P+EHEDpwqaRF+8nXDEvswCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUZG9ja2VyLXB1bGxzIHRlc3QgQ0EwIBcNMjYxMTI4MDkwOTQ2
WhgPMjEyNjExMDQwOTA5NDZaMBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqG
SM49AgEGCCqGSM49AwEHA0IABC2NWsMpH2knDTg1qp4fUDUf1hEx6qX1hPDeoWb8
vU4el1tZlO3FR6ZjggfyetXqFo67McU+kn+P5hXwHvXIdpyjgZIwgY8wGgYDVR0R
BBMwEYIJbG9jYWxob3N0hwR/AAABMAwGA1UdEwEB/wQCMAAwDgYDVR0PAQH/BAQD
AgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMBMB0GA1UdDgQWBBS/moa6S4NDf/x2WSgs
TEgDJqe3hjAfBgNVHSMEGDAWgBQGvMFYfalc/pAQdjDieIKT9Hpu6jAKBggqhkjO
PQQDAgNIADBFAiEAmuFRRfOODquYrUDkdDbT4JS7JVwkUVuJQVmJn3dofDgCIF43
6eg3UnjBc9idKLopFaR0oXkedFi0SQR85tUvBEPK
-----END CERTIFICATE-----
";
    const TEST_SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqCdjkXstKqh47x+z
OakXroISWtCBuW3eiEvjbVA/EG2hRANCAAQtjVrDKR9pJw04NaqeH1A1H9YRMeql
9YTw3qFm/L1OHpdbWZTtxUemY4IH8nrV6haOuzHFPpJ/j+YV8B71yHac
-----END PRIVATE KEY-----
";
    /// What the test server answers to every request: an SSM GetParameter
    /// result, which is also a body reqwest can read.
    const ANSWER: &str = r#"{"Parameter":{"Name":"/docker-pulls/images","Type":"String","Value":"library/nginx","Version":1}}"#;

    /// A file under the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn with(name: &str, contents: &[u8]) -> Self {
            let path = std::env::temp_dir()
                .join(format!("docker-pulls-tls-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).expect("write temp file");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("test certificate")
    }

    /// An HTTPS server on 127.0.0.1 whose certificate the test CA signed;
    /// answers every request with [`ANSWER`] and closes. Returns its port.
    fn https_server() -> u16 {
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(TEST_SERVER_KEY.as_bytes())
            .expect("test key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![der(TEST_SERVER_PEM)], key)
        .expect("server config");
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = Arc::clone(&config);
                // A refused handshake ends the connection; that is the point.
                std::thread::spawn(move || serve_one(config, stream));
            }
        });
        port
    }

    fn serve_one(
        config: Arc<rustls::ServerConfig>,
        stream: std::net::TcpStream,
    ) -> std::io::Result<()> {
        let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
        let mut reader = BufReader::new(rustls::StreamOwned::new(connection, stream));
        let mut content_length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        let mut tls = reader.into_inner();
        write!(
            tls,
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
            ANSWER.len()
        )?;
        tls.conn.send_close_notify();
        tls.flush()
    }

    #[test]
    fn every_compiled_in_root_is_a_usable_trust_anchor() {
        // The SDK panics on a root it cannot parse, so each one must.
        let roots = TrustedRoots::compiled_in();
        assert!(roots.len() > 100, "only {} roots", roots.len());
        assert_eq!(roots.added(), 0);
        let mut store = rustls::RootCertStore::empty();
        for (index, cert) in roots.certs.iter().enumerate() {
            store
                .add(cert.clone())
                .unwrap_or_else(|e| panic!("compiled-in root {index}: {e}"));
        }
    }

    #[test]
    fn ssl_cert_file_adds_its_certificates_to_the_compiled_in_roots() {
        let two = format!("{TEST_CA_PEM}{TEST_SERVER_PEM}");
        let file = TempFile::with("two.pem", two.as_bytes());
        let roots = TrustedRoots::with_cert_file(Some(&file.0)).expect("roots");
        let compiled_in = TrustedRoots::compiled_in();
        assert_eq!(roots.added(), 2);
        assert_eq!(roots.len(), compiled_in.len() + 2);
        assert_eq!(roots.certs[..compiled_in.len()], compiled_in.certs[..]);
        assert_eq!(
            roots.certs[compiled_in.len()..],
            [der(TEST_CA_PEM), der(TEST_SERVER_PEM)]
        );
        // Without the variable: the compiled-in roots alone.
        let roots = TrustedRoots::with_cert_file(None).expect("roots");
        assert_eq!(roots.certs, compiled_in.certs);
    }

    #[test]
    fn a_bad_ssl_cert_file_is_an_error_that_names_it_and_says_what_to_do() {
        let missing = std::env::temp_dir().join("docker-pulls-tls-no-such-file.pem");
        let error = TrustedRoots::with_cert_file(Some(&missing)).unwrap_err();
        assert!(
            matches!(error, TlsError::CertFileUnreadable { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read SSL_CERT_FILE {}: No such file or directory (os error 2) \
                 (point it at a PEM file of CA certificates, or unset it)",
                missing.display()
            )
        );

        let file = TempFile::with("empty.pem", b"just some text\n");
        let error = TrustedRoots::with_cert_file(Some(&file.0)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "SSL_CERT_FILE {} holds no certificate (it must hold \
                 `-----BEGIN CERTIFICATE-----` blocks)",
                file.0.display()
            )
        );

        let cut = &TEST_CA_PEM[..TEST_CA_PEM.len() / 2];
        let file = TempFile::with("cut.pem", cut.as_bytes());
        let error = TrustedRoots::with_cert_file(Some(&file.0)).unwrap_err();
        assert!(
            matches!(error, TlsError::CertFileNotPem { .. }),
            "{error:?}"
        );

        // Well-formed PEM whose contents are not a certificate: the second.
        let not_a_cert = format!(
            "{TEST_CA_PEM}-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"
        );
        let file = TempFile::with("not-a-cert.pem", not_a_cert.as_bytes());
        let error = TrustedRoots::with_cert_file(Some(&file.0)).unwrap_err();
        assert!(
            matches!(error, TlsError::CertUnusable { number: 2, .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with(&format!(
                "SSL_CERT_FILE {}: certificate 2 cannot be a root of trust: ",
                file.0.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn the_pem_bundle_for_the_sdk_holds_exactly_the_roots() {
        let file = TempFile::with("ca.pem", TEST_CA_PEM.as_bytes());
        let roots = TrustedRoots::with_cert_file(Some(&file.0)).expect("roots");
        let bundle = pem_bundle(&roots.certs);
        let parsed = CertificateDer::pem_slice_iter(&bundle)
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        assert_eq!(parsed, roots.certs);
        // The test CA, as openssl wrapped it, comes out byte for byte.
        assert!(String::from_utf8_lossy(&bundle).ends_with(TEST_CA_PEM));
    }

    #[tokio::test]
    async fn reqwest_trusts_a_private_ca_only_from_ssl_cert_file() {
        let port = https_server();
        let url = format!("https://localhost:{port}/");

        let error = TrustedRoots::compiled_in()
            .reqwest_builder()
            .expect("builder")
            .build()
            .expect("client")
            .get(&url)
            .send()
            .await
            .expect_err("a CA that is not trusted");
        let text = crate::http::error_chain(&error);
        assert!(
            text.contains("invalid peer certificate: UnknownIssuer"),
            "{text}"
        );

        let file = TempFile::with("reqwest-ca.pem", TEST_CA_PEM.as_bytes());
        let client = TrustedRoots::with_cert_file(Some(&file.0))
            .expect("roots")
            .reqwest_builder()
            .expect("builder")
            .build()
            .expect("client");
        let response = client.get(&url).send().await.expect("trusted");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), ANSWER);
    }

    /// SSM through the client [`TrustedRoots::aws_http_client`] makes, set on
    /// the `SdkConfig` as main.rs does.
    async fn get_parameter(roots: &TrustedRoots, port: u16) -> Result<String, String> {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(roots.aws_http_client().expect("SDK client"))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .endpoint_url(format!("https://localhost:{port}"))
            .load()
            .await;
        aws_sdk_ssm::Client::new(&config)
            .get_parameter()
            .name("/docker-pulls/images")
            .send()
            .await
            .map(|output| output.parameter.and_then(|p| p.value).unwrap_or_default())
            .map_err(|error| crate::http::causes_on_one_line(&error))
    }

    #[tokio::test]
    async fn the_aws_sdk_trusts_a_private_ca_only_from_ssl_cert_file() {
        let port = https_server();

        let error = get_parameter(&TrustedRoots::compiled_in(), port)
            .await
            .expect_err("a CA that is not trusted");
        assert!(
            error.contains("invalid peer certificate: UnknownIssuer"),
            "{error}"
        );

        let file = TempFile::with("sdk-ca.pem", TEST_CA_PEM.as_bytes());
        let roots = TrustedRoots::with_cert_file(Some(&file.0)).expect("roots");
        let value = get_parameter(&roots, port).await.expect("trusted");
        assert_eq!(value, "library/nginx");
    }
}
