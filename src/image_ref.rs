//! Image references as people write them, reduced to the Docker Hub
//! repository (`namespace/name`) whose statistics we track.
//!
//! Statistics are per repository, so tags and digests are accepted and
//! dropped. Anything that is not a valid Docker Hub repository name is
//! rejected here, before it could reach Docker Hub as a URL path.

use std::fmt;

/// Docker's limit on the length of a repository name (`namespace/name`).
const MAX_NAME_LEN: usize = 255;

/// Registry host prefixes that all mean Docker Hub.
const HUB_HOSTS: [&str; 4] = [
    "docker.io/",
    "index.docker.io/",
    "registry-1.docker.io/",
    "registry.hub.docker.com/",
];

/// One Docker Hub repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Repository {
    pub namespace: String,
    pub name: String,
}

impl Repository {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What one entry of the image list asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSpec {
    /// A single repository.
    Repository(Repository),
    /// `namespace/*`: every repository of the namespace.
    Namespace(String),
}

/// Why a reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("empty reference")]
    Empty,
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("repository names must be lowercase")]
    Uppercase,
    #[error("too many path parts: Docker Hub repositories are `namespace/name`")]
    TooManyParts,
    #[error(
        "invalid path part {0:?}: only lowercase letters, digits and single separators (. _ __ -) are allowed"
    )]
    InvalidComponent(String),
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("registry {0:?} is not Docker Hub")]
    OtherRegistry(String),
}

/// Splits an image list (an SSM String or StringList) on commas, spaces and
/// newlines, dropping blank entries.
pub fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|entry| !entry.is_empty())
}

/// Parses one reference: `httpd`, `library/httpd`, `docker.io/acme/app:1.2`,
/// `acme/app@sha256:…`, `acme/*`.
pub fn parse(reference: &str) -> Result<ImageSpec, RefError> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(RefError::Empty);
    }
    let mut rest = reference;
    for host in HUB_HOSTS {
        if let Some(stripped) = rest.strip_prefix(host) {
            rest = stripped;
            break;
        }
    }

    // Digest first (it contains a colon), then a tag after the last slash.
    if let Some((path, digest)) = rest.split_once('@') {
        validate_digest(digest)?;
        rest = path;
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    if let Some(colon) = rest[last_slash..].find(':') {
        let tag = &rest[last_slash + colon + 1..];
        validate_tag(tag)?;
        rest = &rest[..last_slash + colon];
    }

    if rest.len() > MAX_NAME_LEN {
        return Err(RefError::TooLong);
    }
    if rest.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(RefError::Uppercase);
    }

    let parts: Vec<&str> = rest.split('/').collect();
    // Docker's rule: a first part with `.` or `:`, or `localhost`, is a registry.
    if let [first, _, ..] = parts.as_slice() {
        let host_like = first.starts_with(|c: char| c.is_ascii_alphanumeric());
        if host_like && (first.contains(['.', ':']) || *first == "localhost") {
            return Err(RefError::OtherRegistry((*first).to_owned()));
        }
    }
    match parts.as_slice() {
        [name] => {
            validate_component(name)?;
            Ok(ImageSpec::Repository(Repository::new("library", *name)))
        }
        [namespace, "*"] => {
            validate_component(namespace)?;
            Ok(ImageSpec::Namespace((*namespace).to_owned()))
        }
        [namespace, name] => {
            validate_component(namespace)?;
            validate_component(name)?;
            Ok(ImageSpec::Repository(Repository::new(*namespace, *name)))
        }
        _ => {
            // Name the first bad part if there is one: it says more.
            for part in &parts {
                validate_component(part)?;
            }
            Err(RefError::TooManyParts)
        }
    }
}

/// Docker's path-component grammar:
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn validate_component(component: &str) -> Result<(), RefError> {
    let invalid = || RefError::InvalidComponent(component.to_owned());
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(invalid());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let allowed = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return Err(invalid());
        }
    }
    Ok(())
}

/// Docker's tag grammar: `[\w][\w.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<(), RefError> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let ok = tag.len() <= 128
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(RefError::InvalidTag(tag.to_owned()))
    }
}

/// `algorithm:hex` with an algorithm of letters/digits and at least 32 hex digits.
fn validate_digest(digest: &str) -> Result<(), RefError> {
    let ok = digest.split_once(':').is_some_and(|(algorithm, hex)| {
        !algorithm.is_empty()
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
            && hex.len() >= 32
            && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(RefError::InvalidDigest(digest.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(namespace: &str, name: &str) -> Result<ImageSpec, RefError> {
        Ok(ImageSpec::Repository(Repository::new(namespace, name)))
    }

    #[test]
    fn valid_references() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let table = [
            ("httpd", repo("library", "httpd")),
            ("library/httpd", repo("library", "httpd")),
            ("library/mysql", repo("library", "mysql")),
            ("radoondas/netatmobeat", repo("radoondas", "netatmobeat")),
            (
                "docker.io/radoondas/netatmobeat:latest",
                repo("radoondas", "netatmobeat"),
            ),
            ("docker.io/httpd", repo("library", "httpd")),
            (
                "index.docker.io/library/httpd:2.4-alpine",
                repo("library", "httpd"),
            ),
            ("httpd:2.4", repo("library", "httpd")),
            (&format!("acme/app@{digest}"), repo("acme", "app")),
            (&format!("acme/app:1.0@{digest}"), repo("acme", "app")),
            ("my-org/my_app.v2", repo("my-org", "my_app.v2")),
            ("acme/a__b--c", repo("acme", "a__b--c")),
            ("  acme/app  ", repo("acme", "app")),
            ("radoondas/*", Ok(ImageSpec::Namespace("radoondas".into()))),
            (
                "docker.io/radoondas/*",
                Ok(ImageSpec::Namespace("radoondas".into())),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(parse(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn invalid_references() {
        let long = format!("acme/{}", "a".repeat(251));
        let table = [
            ("", RefError::Empty),
            ("UPPER/Case", RefError::Uppercase),
            ("acme/App", RefError::Uppercase),
            ("a/b/c", RefError::TooManyParts),
            ("acme/../etc", RefError::InvalidComponent("..".into())),
            ("../etc", RefError::InvalidComponent("..".into())),
            ("acme/app?x=1", RefError::InvalidComponent("app?x=1".into())),
            ("acme/-app", RefError::InvalidComponent("-app".into())),
            ("acme/app.", RefError::InvalidComponent("app.".into())),
            ("acme/a..b", RefError::InvalidComponent("a..b".into())),
            ("acme/a___b", RefError::InvalidComponent("a___b".into())),
            ("acme//app", RefError::InvalidComponent(String::new())),
            ("acme/app:", RefError::InvalidTag(String::new())),
            ("acme/app:-x", RefError::InvalidTag("-x".into())),
            ("acme/app@md5", RefError::InvalidDigest("md5".into())),
            (
                "acme/app@sha256:xyz",
                RefError::InvalidDigest("sha256:xyz".into()),
            ),
            ("*", RefError::InvalidComponent("*".into())),
            (
                "ghcr.io/acme/app",
                RefError::OtherRegistry("ghcr.io".into()),
            ),
            (
                "localhost:5000/app",
                RefError::OtherRegistry("localhost:5000".into()),
            ),
            ("a/b/c/d", RefError::TooManyParts),
            (long.as_str(), RefError::TooLong),
        ];
        for (input, expected) in table {
            assert_eq!(parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn longest_valid_name_is_accepted() {
        let name = format!("acme/{}", "a".repeat(250));
        assert_eq!(name.len(), MAX_NAME_LEN);
        assert!(parse(&name).is_ok());
    }

    #[test]
    fn split_list_accepts_commas_spaces_and_newlines() {
        let list = "httpd, library/mysql\nradoondas/*,,\n\n  acme/app\t";
        let entries: Vec<&str> = split_list(list).collect();
        assert_eq!(
            entries,
            ["httpd", "library/mysql", "radoondas/*", "acme/app"]
        );
        assert_eq!(split_list(" ,\n ").count(), 0);
    }
}
