//! HTTP plumbing shared by the Docker Hub client, the bulk sink and setup:
//! capped body reads and one-line error chains that never show a URL or a
//! secret ([`crate::secrets::clean`]).

use reqwest::Response;

/// An error and its causes on one line, without the URL (which is known from
/// context and could carry credentials).
pub fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "");
    }
    push_causes(&mut text, error);
    crate::secrets::clean(&text)
}

/// Any error and its causes on one line: `error: cause: cause`.
pub fn causes_on_one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    push_causes(&mut text, error);
    crate::secrets::clean(&text)
}

fn push_causes(text: &mut String, error: &dyn std::error::Error) {
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
}

/// Whether credentials may travel to `url`: over `https://`, or over
/// plain `http://` only to this machine (127.0.0.0/8, `::1`, `localhost`),
/// which is what local tests use. Anywhere else a password, an API key, a
/// token or a SigV4 session token would cross the network readable.
pub fn may_carry_credentials(url: &reqwest::Url) -> bool {
    match (url.scheme(), url.host_str()) {
        ("https", _) => true,
        ("http", Some(host)) => {
            let host = host.to_ascii_lowercase();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<std::net::IpAddr>() {
                Ok(ip) => ip.is_loopback(),
                Err(_) => host == "localhost" || host.ends_with(".localhost"),
            }
        }
        _ => false,
    }
}

/// The redirect policy of the shared client: redirects within the same
/// origin (scheme, host and port) are followed, up to 10; one to another
/// origin is an error naming both origins, so credentials, a session token
/// or a signed `Host` never go where they were not configured to.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from = attempt
            .previous()
            .first()
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default();
        let to = attempt.url().origin().ascii_serialization();
        if attempt.previous().len() > 10 {
            attempt.error(format!("more than 10 redirects from {from}"))
        } else if to != from {
            attempt.error(format!(
                "redirected from {from} to another origin, {to}, which is not followed"
            ))
        } else {
            attempt.follow()
        }
    })
}

pub enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads a body chunk by chunk, stopping as soon as it exceeds `limit`, so a
/// runaway response costs at most `limit` bytes of memory.
pub async fn read_capped(mut response: Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport failure (no HTTP answer) in one sentence a person can act on:
/// which service at which origin, and the innermost cause ("Connection
/// refused", "dns error: …"), without the layers in between or the URL's
/// path and query.
pub fn transport_reason(service: &str, error: &reqwest::Error) -> String {
    let origin = error
        .url()
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_else(|| "its URL".to_owned());
    if error.is_timeout() {
        return format!("{service} at {origin} did not answer in time");
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let cause = crate::secrets::clean(&innermost.to_string());
    if error.is_connect() {
        format!("could not connect to {service} at {origin}: {cause}")
    } else {
        format!("connection to {service} at {origin} failed: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_over_https_or_to_this_machine_only() {
        let ok = |url: &str| may_carry_credentials(&reqwest::Url::parse(url).expect("a URL"));
        for url in [
            "https://es.example.com:9243",
            "http://127.0.0.1:9200",
            "http://127.8.9.10:9200",
            "http://[::1]:9200",
            "http://localhost:9200",
            "http://LOCALHOST",
            "http://es.localhost:9200",
        ] {
            assert!(ok(url), "{url}");
        }
        for url in [
            "http://es.example.com:9200",
            "http://10.0.0.5:9200",
            "http://[::2]:9200",
            "http://localhost.example.com",
            "http://128.0.0.1",
            "ftp://127.0.0.1",
        ] {
            assert!(!ok(url), "{url}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_service_and_the_origin_in_one_line() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let error = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/_bulk?filter_path=errors"))
            .send()
            .await
            .expect_err("nothing listens there");
        let reason = transport_reason("Elasticsearch", &error);
        assert!(
            reason.starts_with(&format!(
                "could not connect to Elasticsearch at http://127.0.0.1:{port}: "
            )),
            "{reason}"
        );
        assert!(reason.contains("refused"), "{reason}");
        assert!(
            !reason.contains("_bulk") && !reason.contains('\n'),
            "{reason}"
        );
    }
}
