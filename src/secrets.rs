//! The one place that cleans text before it leaves the function.
//!
//! Our own code never formats a secret, but servers do: Amazon OpenSearch
//! Service answers a Basic or ApiKey request with a message ending in
//! `Authorization=Basic <base64(user:password)>`, and a SigV4 mismatch with
//! "The Canonical String for this request should have been …", which
//! carries the `x-amz-security-token`. So every message taken from a server
//! passes [`clean`] before it is logged, returned or put in an error, and
//! the log writer ([`CleanWriter`]) and the invocation error pass it once
//! more at the edge.
//!
//! [`clean`] does two things. It cuts and masks the shapes credentials take
//! in any message (an `Authorization=` echo, the canonical request and
//! string-to-sign, `Basic`/`Bearer`/`ApiKey` values, security tokens and
//! signatures). And it replaces every value registered here ([`register`]:
//! the configured password, API key, Docker Hub token, AWS secret key and
//! session token, where they are read) in every form a server might echo
//! it: as is, JSON-escaped, percent-encoded, and in base64 at any alignment,
//! so it is found inside `base64(user:password)` too.

use base64::Engine as _;
use std::sync::RwLock;

/// What replaces a secret or a credential.
pub const MASK: &str = "***";
/// What replaces the end of a message cut at an echoed credential.
pub const CUT: &str = "[cut: it echoed credentials]";
/// Registered values shorter than this are ignored: masking every `abc`
/// would mangle messages and hide nothing worth hiding.
pub const MIN_SECRET_LEN: usize = 4;

/// How many secret values the registry keeps. Configured secrets are
/// registered again on every run (settings are read every invocation), so
/// they stay; what falls out first are Docker Hub bearer tokens of past
/// runs, long expired. The bound keeps [`clean`] fast in a warm container
/// that lives for days.
pub const MAX_SECRETS: usize = 32;

/// Secret values (most recently registered last) and the forms they take
/// in text, longest first.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    secrets: Vec<String>,
    /// Never evicted: the process's own AWS secrets from its environment,
    /// registered once at start.
    pinned: Vec<String>,
    patterns: Vec<String>,
}

impl Registry {
    /// Adds `secret` in all its forms; values shorter than
    /// [`MIN_SECRET_LEN`] (after trimming) are ignored.
    pub fn add(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        if self.pinned.iter().any(|s| s == secret) {
            return;
        }
        if let Some(at) = self.secrets.iter().position(|s| s == secret) {
            let known = self.secrets.remove(at);
            self.secrets.push(known);
            return;
        }
        self.secrets.push(secret.to_owned());
        if self.secrets.len() > MAX_SECRETS {
            self.secrets.remove(0);
        }
        self.rebuild();
    }

    /// Adds `secret` for the life of the process (never evicted).
    pub fn pin(&mut self, secret: &str) {
        let secret = secret.trim();
        if secret.chars().count() < MIN_SECRET_LEN || self.pinned.iter().any(|s| s == secret) {
            return;
        }
        self.secrets.retain(|s| s != secret);
        self.pinned.push(secret.to_owned());
        self.rebuild();
    }

    fn rebuild(&mut self) {
        self.patterns = self
            .pinned
            .iter()
            .chain(&self.secrets)
            .flat_map(|secret| forms(secret))
            .filter(|form| form.len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a form is replaced before a shorter one inside it.
        self.patterns
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.patterns.dedup();
    }

    /// Whether `secret` is the most recently registered value.
    fn is_latest(&self, secret: &str) -> bool {
        self.secrets.last().is_some_and(|s| s == secret) || self.pinned.iter().any(|s| s == secret)
    }

    /// `text` with the registered values replaced and credentials cut or
    /// masked (see the module's documentation).
    pub fn clean(&self, text: &str) -> String {
        let mut text = cut(text);
        for pattern in &self.patterns {
            if text.contains(pattern.as_str()) {
                text = text.replace(pattern.as_str(), MASK);
            }
        }
        mask_credentials(&text)
    }
}

static GLOBAL: RwLock<Registry> = RwLock::new(Registry {
    secrets: Vec::new(),
    pinned: Vec::new(),
    patterns: Vec::new(),
});

/// Registers a secret for the life of the process, never evicted: the
/// function's own AWS secret key and session token from its environment.
pub fn register_for_good(secret: &str) {
    if let Ok(mut registry) = GLOBAL.write() {
        registry.pin(secret);
    }
}

/// Registers a secret value for the whole process, where it is read
/// (SSM, flags, the environment, the credentials provider).
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.chars().count() < MIN_SECRET_LEN {
        return;
    }
    if let Ok(registry) = GLOBAL.read()
        && registry.is_latest(secret)
    {
        return;
    }
    if let Ok(mut registry) = GLOBAL.write() {
        registry.add(secret);
    }
}

/// Registers an HTTP Basic pair: the password, and `user:password` (whose
/// base64 is the header's value).
pub fn register_basic(username: &str, password: &str) {
    register(password);
    if password.trim().chars().count() >= MIN_SECRET_LEN {
        register(&format!("{username}:{password}"));
    }
}

/// `text` cleaned with the process's registry: what every server message,
/// error and log line passes before it leaves the function.
pub fn clean(text: &str) -> String {
    match GLOBAL.read() {
        Ok(registry) => registry.clean(text),
        // A panic while registering: still cut and mask.
        Err(poisoned) => poisoned.into_inner().clean(text),
    }
}

/// The forms of `secret` a server may echo: as is, JSON-escaped,
/// percent-encoded (upper and lower hex, `+` or `%20` for a space), and
/// base64 (standard and URL-safe) at each of the three alignments it can
/// have inside longer encoded text, each also percent-encoded.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    if let Ok(json) = serde_json::to_string(secret) {
        out.push(json[1..json.len() - 1].to_owned());
    }
    out.extend(percent_forms(secret));
    let bytes = secret.as_bytes();
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3 {
            let rest = &bytes[shift.min(bytes.len())..];
            let whole = rest.len() / 3 * 3;
            if whole >= 3 {
                let encoded = engine.encode(&rest[..whole]);
                out.extend(percent_forms(&encoded));
                out.push(encoded);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Percent-encodings of `text` that differ from it.
fn percent_forms(text: &str) -> Vec<String> {
    let mut forms = Vec::new();
    for (upper, plus) in [(true, false), (false, false), (true, true)] {
        let mut encoded = String::with_capacity(text.len() * 3);
        for &byte in text.as_bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    encoded.push(byte as char)
                }
                b' ' if plus => encoded.push('+'),
                _ if upper => encoded.push_str(&format!("%{byte:02X}")),
                _ => encoded.push_str(&format!("%{byte:02x}")),
            }
        }
        if encoded != text && !forms.contains(&encoded) {
            forms.push(encoded);
        }
    }
    forms
}

/// Markers after which a message is dropped: AWS's echo of the
/// `Authorization` header, and the canonical request and string-to-sign of
/// a signature mismatch (which hold the security token).
const CUT_AT: [&str; 3] = [
    "authorization=",
    "the canonical string",
    "the string-to-sign",
];

fn cut(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    match CUT_AT.iter().filter_map(|marker| lower.find(marker)).min() {
        // ASCII lowercasing keeps byte offsets, and the markers are ASCII.
        Some(at) => format!("{}{CUT}", &text[..at]),
        None => text.to_owned(),
    }
}

/// A credential's name and how its value ends.
struct Credential {
    /// Lowercase, matched case-insensitively at a word start.
    marker: &'static str,
    /// The value must look like a credential (digits or symbols, 8+
    /// characters): "Basic authentication" is prose, not a header.
    looks_like_a_token: bool,
}

const CREDENTIALS: [Credential; 9] = [
    Credential {
        marker: "basic ",
        looks_like_a_token: true,
    },
    Credential {
        marker: "bearer ",
        looks_like_a_token: true,
    },
    Credential {
        marker: "apikey ",
        looks_like_a_token: true,
    },
    Credential {
        marker: "x-amz-security-token=",
        looks_like_a_token: false,
    },
    Credential {
        marker: "x-amz-security-token:",
        looks_like_a_token: false,
    },
    Credential {
        marker: "x-amz-signature=",
        looks_like_a_token: false,
    },
    Credential {
        marker: "signature=",
        looks_like_a_token: false,
    },
    Credential {
        marker: "aws_secret_access_key=",
        looks_like_a_token: false,
    },
    Credential {
        marker: "aws_session_token=",
        looks_like_a_token: false,
    },
];

/// Masks the value after each credential marker.
fn mask_credentials(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    // (start, end) of values to mask.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for credential in &CREDENTIALS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(credential.marker) {
            let at = from + found;
            from = at + credential.marker.len();
            let at_word_start =
                at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'-');
            if !at_word_start {
                continue;
            }
            let mut start = from;
            while start < bytes.len() && bytes[start] == b' ' {
                start += 1;
            }
            let mut end = start;
            while end < bytes.len() && is_token_byte(bytes[end]) {
                end += 1;
            }
            let value = &text[start..end];
            let masked_already = value.is_empty() || value == MASK;
            if masked_already || (credential.looks_like_a_token && !looks_like_a_token(value)) {
                continue;
            }
            spans.push((start, end));
        }
    }
    if spans.is_empty() {
        return text.to_owned();
    }
    spans.sort();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in spans {
        if start < copied {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(MASK);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Bytes of a token, header value or query value: stops at whitespace,
/// quotes, `&`, `,` and `;`. ASCII only, so a cut never splits a character.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && !matches!(byte, b'"' | b'\'' | b'&' | b',' | b';' | b'\\')
}

fn looks_like_a_token(value: &str) -> bool {
    value.len() >= 8
        && value
            .bytes()
            .any(|b| b.is_ascii_digit() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'.' | b'-'))
}

/// A tracing writer that cleans each log line before it reaches `inner`:
/// the last guard, for lines whose fields were not cleaned at the source.
pub struct CleanWriter<M> {
    inner: M,
}

impl<M> CleanWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

/// One log record, buffered and written cleaned when dropped (the
/// formatter writes a record and then drops its writer).
pub struct CleanLine<W: std::io::Write> {
    inner: W,
    buffer: Vec<u8>,
}

impl<W: std::io::Write> std::io::Write for CleanLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: std::io::Write> Drop for CleanLine<W> {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let cleaned = clean(&String::from_utf8_lossy(&self.buffer));
        let _ = self.inner.write_all(cleaned.as_bytes());
        let _ = self.inner.flush();
    }
}

impl<'a, M> lambda_runtime::tracing::subscriber::fmt::MakeWriter<'a> for CleanWriter<M>
where
    M: lambda_runtime::tracing::subscriber::fmt::MakeWriter<'a>,
{
    type Writer = CleanLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        CleanLine {
            inner: self.inner.make_writer(),
            buffer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(secrets: &[&str]) -> Registry {
        let mut registry = Registry::default();
        for secret in secrets {
            registry.add(secret);
        }
        registry
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn amazon_opensearch_services_basic_echo_is_cut() {
        let message = "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=Basic ZWxhc3RpYzpjaGFuZ2VtZQ==";
        let cleaned = Registry::default().clean(message);
        assert!(!cleaned.contains("ZWxhc3RpYzpjaGFuZ2VtZQ"), "{cleaned}");
        assert!(
            cleaned.starts_with("Authorization header requires 'Credential' parameter.")
                && cleaned.ends_with(CUT),
            "{cleaned}"
        );
    }

    #[test]
    fn the_canonical_string_and_the_string_to_sign_are_cut() {
        let message = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'POST\n/_bulk\n\nhost:x\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE\n'\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n...'";
        let cleaned = Registry::default().clean(message);
        assert_eq!(
            cleaned,
            format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n{CUT}"
            )
        );
        let lower = Registry::default().clean("x the string-to-sign: abc");
        assert_eq!(lower, format!("x {CUT}"));
    }

    #[test]
    fn credential_shapes_are_masked_and_prose_is_kept() {
        let r = Registry::default();
        assert_eq!(
            r.clean("sent Bearer eyJhbGciOi.J9x_y and ApiKey VnVhQ2Zr=="),
            "sent Bearer *** and ApiKey ***"
        );
        assert_eq!(
            r.clean("GET /?X-Amz-Security-Token=FQoGZXIvYXdzE%2F&X-Amz-Signature=abc123&x=1"),
            "GET /?X-Amz-Security-Token=***&X-Amz-Signature=***&x=1"
        );
        assert_eq!(
            r.clean("x-amz-security-token: IQoJb3Jp/Z2lu=, host"),
            "x-amz-security-token: ***, host"
        );
        let prose = "HTTP Basic authentication failed for user [elastic]; bearer tokens expire";
        assert_eq!(r.clean(prose), prose);
    }

    #[test]
    fn registered_values_are_replaced_in_every_form() {
        let password = "hunter2-Pa$$ word/é";
        let r = registry(&[password, &format!("elastic:{password}")]);
        let url = percent_forms(password)[0].clone();
        for echoed in [
            password.to_owned(),
            serde_json::to_string(password).unwrap(),
            url.clone(),
            b64(password),
            b64(&format!("elastic:{password}")),
            base64::engine::general_purpose::URL_SAFE.encode(password),
            // Inside a longer base64 text, at each alignment.
            b64(&format!("x{password}y")),
            b64(&format!("xy{password}z")),
        ] {
            let cleaned = r.clean(&format!("denied: \"{echoed}\" was refused"));
            assert!(!cleaned.contains(password), "{cleaned}");
            assert!(!cleaned.contains(&echoed), "{echoed}: {cleaned}");
            assert!(cleaned.contains(MASK), "{cleaned}");
        }
        assert!(!r.clean(&url).contains(&url));
    }

    #[test]
    fn short_values_are_ignored_and_unrelated_text_kept() {
        let r = registry(&["abc", "", "   "]);
        assert!(r.patterns.is_empty() && r.secrets.is_empty());
        let text = "abc 200 OK: no secret here, ünïcode kept";
        assert_eq!(r.clean(text), text);
    }

    #[test]
    fn the_oldest_secret_falls_out_and_a_registered_again_one_stays() {
        let mut r = registry(&["configured-password"]);
        r.pin("aws-session-token-from-env");
        for n in 0..MAX_SECRETS + 5 {
            r.add(&format!("bearer-token-{n:04}"));
            // Settings are read, and their secrets registered, every run.
            r.add("configured-password");
        }
        assert_eq!(r.secrets.len(), MAX_SECRETS);
        assert_eq!(r.clean("x configured-password y"), "x *** y");
        assert_eq!(r.clean("bearer-token-0000"), "bearer-token-0000");
        assert_eq!(r.clean("aws-session-token-from-env"), MASK);
        let last = format!("bearer-token-{:04}", MAX_SECRETS + 4);
        assert_eq!(r.clean(&last), MASK);
    }

    #[test]
    fn the_writer_cleans_each_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let seen = sink.0.clone();
        let writer = CleanWriter::new(move || sink.clone());
        {
            use lambda_runtime::tracing::subscriber::fmt::MakeWriter;
            use std::io::Write;
            let mut line = writer.make_writer();
            line.write_all(b"refused: Authorization=")
                .and_then(|()| line.write_all(b"Basic ZWxhc3RpYzpjaGFuZ2VtZQ==\n"))
                .unwrap();
        }
        let written = String::from_utf8(seen.lock().unwrap().clone()).unwrap();
        assert_eq!(written, format!("refused: {CUT}"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const PASSWORD: &str = "pr0p-Secret:pw";
        const TOKEN: &str = "IQoJb3JpZ2luX2VjEOr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ";

        fn echo() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(PASSWORD.to_owned()),
                Just(TOKEN.to_owned()),
                Just(b64(&format!("writer:{PASSWORD}"))),
                Just(format!("Basic {}", b64(&format!("writer:{PASSWORD}")))),
                Just(percent_forms(PASSWORD)[0].clone()),
                Just(serde_json::to_string(TOKEN).unwrap()),
                Just(format!("x-amz-security-token:{TOKEN}")),
                Just(b64(&format!("--{TOKEN}--"))),
            ]
        }

        proptest! {
            #[test]
            fn no_echo_survives_in_any_message(
                before in "\\PC{0,40}",
                echoed in echo(),
                between in "[ a-zA-Z0-9=:/+\"'\n]{0,12}",
                again in echo(),
                after in "\\PC{0,40}",
            ) {
                let r = registry(&[PASSWORD, TOKEN, &format!("writer:{PASSWORD}")]);
                let message = format!("{before}{echoed}{between}{again}{after}");
                let cleaned = r.clean(&message);
                for secret in [PASSWORD, TOKEN] {
                    prop_assert!(!cleaned.contains(secret), "{cleaned:?}");
                    prop_assert!(!cleaned.contains(&b64(secret)), "{cleaned:?}");
                    prop_assert!(!cleaned.contains(&percent_forms(secret)[0]), "{cleaned:?}");
                }
                let pair = b64(&format!("writer:{PASSWORD}"));
                prop_assert!(!cleaned.contains(&pair), "{cleaned:?}");
                // Cleaning twice changes nothing more.
                prop_assert_eq!(r.clean(&cleaned), cleaned.clone());
            }

            #[test]
            fn text_without_secrets_or_credentials_is_unchanged(text in "[a-z ,.:0-9]{0,80}") {
                let r = registry(&[PASSWORD, TOKEN]);
                prop_assert_eq!(r.clean(&text), text);
            }
        }
    }
}
