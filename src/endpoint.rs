//! A Prometheus base URL, parsed: what a plan's `analysis.prometheus` is checked with, and
//! what the gate's transport connects to (`gate::http`). Its credentials are never shown.

/// A Prometheus base URL, taken apart. Credentials (`user:password@`) are kept for Basic auth
/// and never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub(crate) scheme: String,
    /// `host:port`, as written.
    pub(crate) authority: String,
    /// The path prefix without a trailing `/` (`""`, or e.g. `/prometheus`).
    pub(crate) path: String,
    pub(crate) user: Option<(String, String)>,
}

impl Endpoint {
    /// Parses `http(s)://[user[:password]@]host[:port][/path]`; no query, no fragment.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "not a URL (write `https://host:port`)".to_string())?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("the scheme `{scheme}` is not http or https"));
        }
        if rest.contains(['?', '#']) {
            return Err(
                "a Prometheus URL has no query string or fragment (the gate adds its own query)"
                    .into(),
            );
        }
        if rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("the URL holds spaces or control characters".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => {
                let (name, password) = u.split_once(':').unwrap_or((u, ""));
                (Some((percent_decode(name)?, percent_decode(password)?)), h)
            }
            None => (None, authority),
        };
        if hostport.is_empty() || hostport.starts_with(':') {
            return Err("the URL names no host".into());
        }
        if !hostport
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
        {
            return Err("the host is not a host name or address".into());
        }
        Ok(Endpoint {
            scheme,
            authority: hostport.to_ascii_lowercase(),
            path: path.trim_end_matches('/').to_string(),
            user,
        })
    }

    /// The URL without credentials: what every table, JSON and message shows.
    pub fn shown(&self) -> String {
        format!("{}{}", self.origin(), self.path)
    }

    /// `scheme://host:port`, without credentials or path.
    pub(crate) fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    pub fn has_credentials(&self) -> bool {
        self.user.is_some()
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            let v = u8::from_str_radix(&hex, 16)
                .map_err(|_| "a `%` in the credentials is not followed by two hex digits")?;
            out.push(v);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| "the credentials are not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_keep_credentials_out_of_sight() {
        let e = Endpoint::parse("https://ops:p%40ss@Prom.example:9090/prometheus/").unwrap();
        assert_eq!(e.shown(), "https://prom.example:9090/prometheus");
        assert_eq!(e.user, Some(("ops".into(), "p@ss".into())));
        for bad in [
            "ftp://h",
            "h:9090",
            "http://h/?x=1",
            "http://h#f",
            "http://",
            "http://h/a b",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
