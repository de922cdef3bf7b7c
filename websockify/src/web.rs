//! The static web server of `--web DIR`, on the proxy's own port: GET and HEAD of files
//! under DIR, with conditional requests, byte ranges and keep-alive.
//!
//! Written on top of our request-head reader rather than hyper: the same connection must be
//! able to turn into a WebSocket session, and with our own head reader the relay then runs
//! on the bare stream instead of behind hyper's upgrade wrapper. What this serves is small
//! (files, 304s, 206s); the parts that are easy to get wrong, path resolution above all,
//! are here with a test for each attack.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use crate::wire::http::Request;

/// Longest request path accepted (after decoding); longer gets 414.
const MAX_PATH: usize = 4096;
/// File bodies are copied in chunks of this size.
const CHUNK: usize = 64 * 1024;

/// `--web` settings.
#[derive(Clone, Debug)]
pub struct WebOptions {
    /// The web root, canonical (symlinks resolved) so that containment checks are exact.
    pub root: PathBuf,
    /// Serve directory listings for directories without `index.html`.
    pub listings: bool,
}

impl WebOptions {
    /// Checks that `dir` is a readable directory and canonicalises it.
    pub fn new(dir: &Path, listings: bool) -> Result<Self, std::io::Error> {
        let root = dir.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::other(format!("{} is not a directory", dir.display())));
        }
        Ok(Self { root, listings })
    }
}

/// Where a request path leads inside the web root.
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    File(PathBuf),
    /// A directory requested without its trailing slash: redirect to this path.
    Redirect(String),
    /// A directory with a trailing slash and no index.html.
    Directory(PathBuf),
    Error(u16, &'static str),
}

/// Maps a request target to a file under `root`. Pure except for file-system look-ups;
/// never yields a path outside `root`. Public for the fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn resolve(root: &Path, target: &str) -> Resolved {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let query = target.find('?').map(|i| &target[i..]).unwrap_or_default();
    if !path.starts_with('/') {
        return Resolved::Error(400, "Request target must be an absolute path");
    }
    let Ok(decoded) = percent_decode_str(path).decode_utf8() else {
        return Resolved::Error(400, "Request path is not valid UTF-8");
    };
    if decoded.len() > MAX_PATH {
        return Resolved::Error(414, "Request path too long");
    }
    if decoded.contains('\0') || decoded.contains('\\') {
        return Resolved::Error(400, "Invalid character in request path");
    }
    // Segments, with empty ones (from `//`) and `.` dropped; `..` refused outright rather
    // than resolved, so no spelling of it can climb out.
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Resolved::Error(403, "Path traversal refused"),
            s => segments.push(s),
        }
    }
    let mut fs_path = root.to_path_buf();
    for s in &segments {
        // A segment such as "C:" or one that parses as a root must not replace the path.
        if Path::new(s).components().any(|c| !matches!(c, Component::Normal(_))) {
            return Resolved::Error(403, "Invalid path segment");
        }
        fs_path.push(s);
    }
    // Resolve symlinks and insist on staying inside the root.
    let real = match fs_path.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Resolved::Error(403, "Forbidden"),
        Err(_) => return Resolved::Error(404, "File not found"),
    };
    if !real.starts_with(root) {
        return Resolved::Error(404, "File not found");
    }
    if !real.is_dir() {
        if decoded.ends_with('/') {
            return Resolved::Error(404, "File not found");
        }
        return Resolved::File(real);
    }
    if !decoded.ends_with('/') {
        // Built from the cleaned segments: always one leading slash, so never `//host`.
        let mut location = String::from("/");
        for s in &segments {
            location.push_str(&percent_encoding::utf8_percent_encode(s, PATH_SEGMENT).to_string());
            location.push('/');
        }
        location.push_str(query);
        return Resolved::Redirect(location);
    }
    let index = real.join("index.html");
    if index.is_file() {
        return Resolved::File(index);
    }
    Resolved::Directory(real)
}

/// Characters escaped when a path segment is written back into a URL.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%')
    .add(b'/');

/// Serves one plain HTTP request. Returns whether the connection may carry another one.
pub async fn serve<W: AsyncWrite + Unpin>(io: &mut W, request: &Request, web: &WebOptions) -> std::io::Result<bool> {
    let keep_alive = wants_keep_alive(request);
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        let r = Reply::error(405, "Method Not Allowed").header("Allow", "GET, HEAD");
        r.send(io, head_only, false).await?;
        return Ok(false);
    }
    let reply = match resolve(&web.root, &request.target) {
        Resolved::Error(status, text) => {
            // A page may carry a token for the console it opens: logged by its id.
            let shown = crate::admission::token::redact(&request.target, Default::default());
            tracing::info!("{} {shown}: {status} {text}", request.method);
            Reply::error(status, text)
        }
        Resolved::Redirect(location) => Reply::error(301, "Moved Permanently").header("Location", location),
        Resolved::Directory(dir) if web.listings => listing(&dir, &request.target).await,
        Resolved::Directory(_) => Reply::error(404, "No index.html here, and directory listings are off"),
        Resolved::File(path) => return send_file(io, request, &path, keep_alive).await,
    };
    reply.send(io, head_only, keep_alive).await?;
    Ok(keep_alive)
}

/// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked. A request
/// that carries a body we do not read cannot be followed by another.
fn wants_keep_alive(request: &Request) -> bool {
    let has_body = request.header("Transfer-Encoding").is_some()
        || request.header("Content-Length").is_some_and(|v| v.trim() != "0");
    if has_body || request.has_token("Connection", "close") {
        return false;
    }
    request.version >= 1 || request.has_token("Connection", "keep-alive")
}

async fn send_file<W: AsyncWrite + Unpin>(
    io: &mut W,
    request: &Request,
    path: &Path,
    keep_alive: bool,
) -> std::io::Result<bool> {
    let head_only = request.method == "HEAD";
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            let (status, text) = if e.kind() == std::io::ErrorKind::PermissionDenied {
                (403, "Forbidden")
            } else {
                (404, "File not found")
            };
            Reply::error(status, text).send(io, head_only, keep_alive).await?;
            return Ok(keep_alive);
        }
    };
    let meta = file.metadata().await?;
    let len = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let etag = etag(len, modified);
    let last_modified = httpdate::fmt_http_date(modified);
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = match mime.type_() {
        mime_guess::mime::TEXT => format!("{mime}; charset=utf-8"),
        _ if mime.subtype() == "javascript" => format!("{mime}; charset=utf-8"),
        _ => mime.to_string(),
    };
    let base = |status: u16| {
        Reply::new(status)
            .header("Last-Modified", last_modified.clone())
            .header("ETag", etag.clone())
            .header("Accept-Ranges", "bytes")
            .header("Cache-Control", "no-cache")
    };
    if not_modified(request, &etag, modified) {
        base(304).send(io, true, keep_alive).await?;
        return Ok(keep_alive);
    }
    let range = match request.header("Range") {
        Some(r) if if_range_matches(request, &etag, modified) => parse_range(r, len),
        _ => RangeRequest::Full,
    };
    let (reply, start, count) = match range {
        RangeRequest::Full => (base(200), 0, len),
        RangeRequest::Partial(start, end) => {
            (base(206).header("Content-Range", format!("bytes {start}-{end}/{len}")), start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            let r = Reply::error(416, "Range Not Satisfiable").header("Content-Range", format!("bytes */{len}"));
            r.send(io, head_only, keep_alive).await?;
            return Ok(keep_alive);
        }
    };
    let reply = reply.header("Content-Type", content_type).header("Content-Length", count.to_string());
    io.write_all(&reply.head(keep_alive)).await?;
    if !head_only && count > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await?;
        let mut body = file.take(count);
        let mut buf = vec![0u8; CHUNK.min(count as usize)];
        let mut sent = 0u64;
        loop {
            let n = body.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            io.write_all(&buf[..n]).await?;
            sent += n as u64;
        }
        if sent != count {
            // The file shrank under us: the promised length cannot be kept, so end here.
            return Ok(false);
        }
    }
    io.flush().await?;
    Ok(keep_alive)
}

fn etag(len: u64, modified: SystemTime) -> String {
    let nanos = modified.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("\"{len:x}-{nanos:x}\"")
}

/// `If-None-Match` (which wins when present) or `If-Modified-Since`.
fn not_modified(request: &Request, etag: &str, modified: SystemTime) -> bool {
    if let Some(tags) = request.header("If-None-Match") {
        return tags.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == etag);
    }
    match request.header("If-Modified-Since").and_then(|d| httpdate::parse_http_date(d).ok()) {
        Some(since) => truncate_secs(modified) <= since,
        None => false,
    }
}

/// `If-Range`: the range applies only if the validator still matches.
fn if_range_matches(request: &Request, etag: &str, modified: SystemTime) -> bool {
    match request.header("If-Range") {
        None => true,
        Some(v) if v.starts_with('"') || v.starts_with("W/") => v == etag,
        Some(v) => httpdate::parse_http_date(v).is_ok_and(|d| d == truncate_secs(modified)),
    }
}

fn truncate_secs(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    Full,
    /// First and last byte, inclusive.
    Partial(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; anything else (several ranges, other units, syntax errors) is
/// served whole, which RFC 9110 allows. Public for the fuzz target (`fuzz/`).
#[doc(hidden)]
pub fn parse_range(header: &str, len: u64) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return RangeRequest::Full };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeRequest::Full };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        (true, true) => return RangeRequest::Full,
        (true, false) => {
            let Some(n) = parse(last) else { return RangeRequest::Full };
            if n == 0 {
                return RangeRequest::Unsatisfiable;
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        (false, _) => {
            let Some(start) = parse(first) else { return RangeRequest::Full };
            let end = if last.is_empty() { Some(u64::MAX) } else { parse(last) };
            let Some(end) = end else { return RangeRequest::Full };
            if end < start {
                return RangeRequest::Full;
            }
            (start, end.min(len.saturating_sub(1)))
        }
    };
    if len == 0 || start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial(start, end)
}

/// A directory listing (only with listings enabled).
async fn listing(dir: &Path, target: &str) -> Reply {
    let mut names = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            let is_dir = e.file_type().await.is_ok_and(|t| t.is_dir());
            let name = e.file_name().to_string_lossy().into_owned();
            names.push(if is_dir { name + "/" } else { name });
        }
    }
    names.sort();
    let path = target.split('?').next().unwrap_or("/");
    let title = html_escape(&percent_decode_str(path).decode_utf8_lossy());
    let mut body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1><ul>\n"
    );
    for name in names {
        let href = percent_encoding::utf8_percent_encode(name.trim_end_matches('/'), PATH_SEGMENT).to_string();
        let slash = if name.ends_with('/') { "/" } else { "" };
        body.push_str(&format!("<li><a href=\"{href}{slash}\">{}</a></li>\n", html_escape(&name)));
    }
    body.push_str("</ul></body></html>\n");
    let mut reply = Reply::new(200).header("Content-Type", "text/html; charset=utf-8");
    reply.body = body;
    reply
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A response with an in-memory body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn new(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: String::new() }
    }

    fn error(status: u16, text: &str) -> Self {
        let mut r = Self::new(status).header("Content-Type", "text/plain; charset=utf-8");
        r.body = format!("{status} {text}\n");
        r
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn head(&self, keep_alive: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nServer: websockify-rs\r\nDate: {}\r\n",
            self.status,
            crate::wire::http::reason_phrase(self.status),
            httpdate::fmt_http_date(SystemTime::now())
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
        out.into_bytes()
    }

    async fn send<W: AsyncWrite + Unpin>(
        mut self,
        io: &mut W,
        head_only: bool,
        keep_alive: bool,
    ) -> std::io::Result<()> {
        if self.status != 304 {
            let len = self.body.len().to_string();
            self = self.header("Content-Length", len);
        }
        let mut bytes = self.head(keep_alive);
        if !head_only && self.status != 304 {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        io.write_all(&bytes).await?;
        io.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("index.html"), "home").unwrap();
        std::fs::write(root.join("sub/page.html"), "page").unwrap();
        std::fs::write(root.join("sub/deeper/index.html"), "deep").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("escape-dir")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/page.html"), root.join("inside.html")).unwrap();
        let canonical = root.canonicalize().unwrap();
        (dir, canonical)
    }

    /// Tiny self-cleaning temporary directory (keeps the dependency list short).
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "wsfy-web-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn resolves_files_directories_and_redirects() {
        let (_d, root) = root();
        assert_eq!(resolve(&root, "/"), Resolved::File(root.join("index.html")));
        assert_eq!(resolve(&root, "/sub/page.html?x=1"), Resolved::File(root.join("sub/page.html")));
        assert_eq!(resolve(&root, "/sub/deeper/"), Resolved::File(root.join("sub/deeper/index.html")));
        assert_eq!(resolve(&root, "/sub"), Resolved::Redirect("/sub/".into()));
        assert_eq!(resolve(&root, "/sub?a=b"), Resolved::Redirect("/sub/?a=b".into()));
        assert_eq!(resolve(&root, "/sub/"), Resolved::Directory(root.join("sub")));
        assert_eq!(resolve(&root, "/missing.html"), Resolved::Error(404, "File not found"));
        assert_eq!(resolve(&root, "/sub/page.html/"), Resolved::Error(404, "File not found"));
        assert_eq!(resolve(&root, "/%73ub/page.html"), Resolved::File(root.join("sub/page.html")));
        // A symlink that stays inside is fine.
        assert_eq!(resolve(&root, "/inside.html"), Resolved::File(root.join("sub/page.html")));
    }

    #[test]
    fn attacks_never_escape_or_redirect_off_site() {
        let (_d, root) = root();
        let cases: &[(&str, u16)] = &[
            ("/../secret.txt", 403),
            ("/sub/../../secret.txt", 403),
            ("/%2e%2e/secret.txt", 403),
            ("/%2E%2E%2Fsecret.txt", 403),
            ("/sub/%2e%2e/%2e%2e/secret.txt", 403),
            ("/..%5csecret.txt", 400),
            ("/escape.txt", 404),
            ("/escape-dir/secret.txt", 404),
            ("/index.html%00.txt", 400),
            ("/%ff", 400),
            ("secret.txt", 400),
            ("http://evil.example/", 400),
        ];
        for (target, status) in cases {
            match resolve(&root, target) {
                Resolved::Error(s, _) => assert_eq!(s, *status, "{target}"),
                other => panic!("{target}: {other:?}"),
            }
        }
        // Absolute paths are taken relative to the root.
        assert_eq!(resolve(&root, "//etc/passwd"), Resolved::Error(404, "File not found"));
        // CVE-2021-28861: `//host/dir` must not redirect to `//host/dir/`.
        assert_eq!(resolve(&root, "//sub"), Resolved::Redirect("/sub/".into()));
        assert_eq!(resolve(&root, "///sub"), Resolved::Redirect("/sub/".into()));
        assert_eq!(resolve(&root, "/%2fsub"), Resolved::Redirect("/sub/".into()));
        // Over-long paths.
        assert_eq!(resolve(&root, &format!("/{}", "a".repeat(5000))), Resolved::Error(414, "Request path too long"));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeRequest::Partial(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeRequest::Partial(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeRequest::Partial(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), RangeRequest::Partial(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), RangeRequest::Partial(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeRequest::Full);
        assert_eq!(parse_range("items=0-1", 100), RangeRequest::Full);
        assert_eq!(parse_range("bytes=9-2", 100), RangeRequest::Full);
        assert_eq!(parse_range("bytes=0-0", 0), RangeRequest::Unsatisfiable);
    }
}
