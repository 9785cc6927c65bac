//! The gate's HTTP: one Prometheus origin (scheme, host, port, path prefix), credentials kept
//! out of every text shown, the system's CAs plus `--ca-file`, redirects followed only within
//! the origin, bodies capped, server text cleaned of control characters, and one deadline for
//! the whole gate run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::endpoint::Endpoint;

/// The most of a response read: a query for one number answers in bytes, not megabytes.
pub const MAX_BODY: u64 = 4 << 20;
/// How long one request may take at most (within the run's deadline).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection failures and 5xx answers are tried again this many times.
const RETRIES: u32 = 2;
/// Same-origin redirects followed (a path prefix added by a proxy, say).
const MAX_REDIRECTS: u32 = 3;
/// Where distributions keep their CA bundle (as OpenSSL looks for it), when `SSL_CERT_FILE`
/// does not say.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// How to reach a Prometheus that wants more than a URL.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// A bearer token (read from `--token-file` or `$CANARYPLAN_PROMETHEUS_TOKEN_FILE`).
    pub token: Option<String>,
    /// Extra headers (`X-Scope-OrgID: tenant` for Mimir/Cortex).
    pub headers: Vec<(String, String)>,
    /// A PEM file of CAs to trust besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl Access {
    /// A `Name: value` header as given on the command line.
    pub fn header(text: &str) -> Result<(String, String), String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("`{}` is not `Name: value`", clean(text)))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(format!("`{}` is not a header name", clean(name)));
        }
        let value = value.trim();
        if value.chars().any(char::is_control) {
            return Err(format!(
                "the value of header {name} holds control characters"
            ));
        }
        Ok((name.to_string(), value.to_string()))
    }

    /// The token in `path`, trimmed; an empty file is an error (a mount that did not happen).
    pub fn token_from(path: &Path) -> Result<String, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        let token = text.trim();
        if token.is_empty() || token.chars().any(char::is_control) {
            return Err(format!(
                "the token file {} is empty or holds more than one line",
                path.display()
            ));
        }
        Ok(token.to_string())
    }
}

/// A connection to one Prometheus for one gate run.
pub struct Client {
    agent: ureq::Agent,
    endpoint: Endpoint,
    headers: Vec<(String, String)>,
    /// Texts never to show: the password, the token, secret header values.
    secrets: Vec<String>,
    deadline: Instant,
    timeout: Duration,
}

/// Why a request gave no answer, as the user should read it.
pub type Failure = String;

impl Client {
    pub fn new(
        endpoint: Endpoint,
        access: &Access,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Client, String> {
        let mut builder = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("canaryplan/", env!("CARGO_PKG_VERSION")));
        if endpoint.scheme == "https" {
            builder = builder.tls_config(
                TlsConfig::builder()
                    .root_certs(roots(access.ca_file.as_deref())?)
                    .build(),
            );
        }
        let mut headers = access.headers.clone();
        let mut secrets = Vec::new();
        if let Some((user, password)) = &endpoint.user {
            headers.push((
                "Authorization".into(),
                format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            ));
            secrets.push(password.clone());
        }
        if let Some(t) = &access.token {
            headers.push(("Authorization".into(), format!("Bearer {t}")));
            secrets.push(t.clone());
        }
        for (name, value) in &access.headers {
            if name.eq_ignore_ascii_case("authorization")
                || name.to_ascii_lowercase().contains("token")
            {
                secrets.push(value.clone());
            }
        }
        secrets.retain(|s| !s.is_empty());
        Ok(Client {
            agent: builder.build().into(),
            endpoint,
            headers,
            secrets,
            deadline,
            timeout,
        })
    }

    pub fn shown(&self) -> String {
        self.endpoint.shown()
    }

    /// Server or library text made safe to show: control characters escaped, credentials
    /// replaced by `***`.
    pub fn clean(&self, text: &str) -> String {
        let mut t = clean(text);
        for s in &self.secrets {
            t = t.replace(s.as_str(), "***");
        }
        t
    }

    /// GETs `/api/v1/query` with `params`; returns the body of an answer (a 2xx, or a
    /// Prometheus error in JSON) and how many tries it took.
    pub fn query(&self, params: &[(&str, String)]) -> Result<(String, u32), Failure> {
        let first = format!("{}/api/v1/query", self.endpoint.shown());
        let mut last = String::new();
        for t in 1..=RETRIES + 1 {
            match self.get_following(&first, params) {
                Ok((status, body)) => {
                    let prometheus_error = body.contains("\"status\":\"error\"");
                    // Prometheus answers a bad query with 400 and a failed one with 422, each
                    // with a JSON error: those are answers. 401/403 come from auth, not queries.
                    if (200..300).contains(&status)
                        || (matches!(status, 400 | 422) && prometheus_error)
                    {
                        return Ok((body, t));
                    }
                    last = format!(
                        "HTTP {status}{}: {}",
                        match status {
                            401 => " (unauthorized: check the credentials or token)",
                            403 => " (forbidden)",
                            _ => "",
                        },
                        self.clean(&body.chars().take(300).collect::<String>())
                    );
                    if status < 500 {
                        break;
                    }
                }
                Err(Stop::Retry(why)) => last = why,
                Err(Stop::Final(why)) => return Err(why),
            }
            let pause = Duration::from_millis(500 * u64::from(t));
            if t <= RETRIES && Instant::now() + pause < self.deadline {
                std::thread::sleep(pause);
            } else {
                break;
            }
        }
        Err(last)
    }

    /// One GET, following redirects within the origin; a redirect elsewhere is refused.
    fn get_following(&self, url: &str, params: &[(&str, String)]) -> Result<(u16, String), Stop> {
        let mut url = url.to_string();
        let mut with_params = true;
        for _ in 0..=MAX_REDIRECTS {
            let left = self
                .deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| Stop::Final(self.out_of_time()))?;
            let mut req = self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(left.min(REQUEST_TIMEOUT)))
                .build();
            if with_params {
                for (k, v) in params {
                    req = req.query(*k, v);
                }
            }
            for (k, v) in &self.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let mut resp = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Timeout(_)) => return Err(Stop::Final(self.out_of_time())),
                Err(e) => return Err(Stop::Retry(self.clean(&e.to_string()))),
            };
            let status = resp.status().as_u16();
            if (300..400).contains(&status) {
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                url = self.same_origin(&location).ok_or_else(|| {
                    Stop::Final(format!(
                        "HTTP {status}: redirected to `{}`, another origin than {}; not followed (point the gate at the server that answers)",
                        self.clean(&strip_credentials(&location)),
                        self.endpoint.origin()
                    ))
                })?;
                // The redirect's own query string is the one to send.
                with_params = false;
                continue;
            }
            let body = match resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
            {
                Ok(b) => b,
                Err(ureq::Error::BodyExceedsLimit(_)) => {
                    return Err(Stop::Final(format!(
                        "an answer larger than {} MiB (cut off; a query for one number answers in bytes)",
                        MAX_BODY >> 20
                    )));
                }
                Err(ureq::Error::Timeout(_)) => return Err(Stop::Final(self.out_of_time())),
                Err(e) => {
                    return Err(Stop::Retry(format!(
                        "the answer broke off: {}",
                        self.clean(&e.to_string())
                    )));
                }
            };
            return Ok((status, body));
        }
        Err(Stop::Final(format!("more than {MAX_REDIRECTS} redirects")))
    }

    fn out_of_time(&self) -> String {
        format!(
            "no complete answer within the gate's deadline ({}s; --timeout sets it): the server is slow or drip-feeds its answer",
            self.timeout.as_secs()
        )
    }

    /// The absolute URL of a redirect target when it stays on the origin.
    fn same_origin(&self, location: &str) -> Option<String> {
        if location.starts_with('/') && !location.starts_with("//") {
            return Some(format!("{}{location}", self.endpoint.origin()));
        }
        let (scheme, rest) = location.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        (scheme.eq_ignore_ascii_case(&self.endpoint.scheme)
            && !authority.contains('@')
            && authority.eq_ignore_ascii_case(&self.endpoint.authority))
        .then(|| location.to_string())
    }
}

enum Stop {
    /// Worth another try (a refused connection, a reset).
    Retry(String),
    /// Another try would not help (out of time, a body too large, a foreign redirect).
    Final(String),
}

fn strip_credentials(url: &str) -> String {
    match (url.split_once("://"), url.find('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        _ => url.to_string(),
    }
}

pub use crate::names::clean;

/// The CAs to trust: the system's (`$SSL_CERT_FILE`, else the distribution's bundle) and
/// `ca_file`'s; Mozilla's built-in list when neither is there.
fn roots(ca_file: Option<&Path>) -> Result<RootCerts, String> {
    let mut certs: Vec<Certificate<'static>> = Vec::new();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    for path in system {
        if let Ok(bytes) = std::fs::read(&path) {
            certs.extend(pem_certs(&bytes));
            break;
        }
    }
    if let Some(f) = ca_file {
        let bytes = std::fs::read(f)
            .map_err(|e| format!("cannot read the CA file {}: {e}", f.display()))?;
        let found = pem_certs(&bytes);
        if found.is_empty() {
            return Err(format!(
                "the CA file {} holds no PEM certificate",
                f.display()
            ));
        }
        certs.extend(found);
    }
    Ok(if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&certs)
    })
}

fn pem_certs(bytes: &[u8]) -> Vec<Certificate<'static>> {
    ureq::tls::parse_pem(bytes)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let idx = usize::try_from((n >> shift) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_keep_credentials_out_of_sight() {
        assert_eq!(base64(b"user:pw"), "dXNlcjpwdw==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(clean("a\u{1b}[31mred\n"), "a\\u{1b}[31mred\\n");
        assert_eq!(
            strip_credentials("http://u:pw@evil.example/x"),
            "http://evil.example/x"
        );
    }
}
