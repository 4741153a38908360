//! A tiny blocking HTTP/1.1 client for tests (plain or rustls with the test CA).
//!
//! One connection per [`Client`], reused for several requests (keep-alive). Every read is bounded
//! by [`TIMEOUT`]. Good enough to drive the simulator from tests; not a general client.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde_json::Value;

/// Read/write timeout of test clients.
pub const TIMEOUT: Duration = Duration::from_secs(10);

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers as received.
    pub headers: Vec<(String, String)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
    /// The body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// How many chunks it came in.
    pub chunks: usize,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 connection.
pub struct Client {
    s: Box<dyn Stream>,
    buf: Vec<u8>,
    host: String,
}

fn timeout_err() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "test client read timed out")
}

impl Client {
    /// Connects over plain TCP to `http://host:port[/...]` or `host:port`.
    pub fn plain(url: &str) -> io::Result<Client> {
        let addr = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        let tcp = TcpStream::connect(&addr)?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        Ok(Client {
            s: Box::new(tcp),
            buf: Vec::new(),
            host: addr,
        })
    }

    /// Connects over TLS to `host:port`, verifying the server as `server_name` against the CA
    /// certificates in `ca_pem`. Handshake errors surface on the first request.
    pub fn tls(addr: &str, server_name: &str, ca_pem: &str) -> io::Result<Client> {
        let cfg = crate::pki::client_config(ca_pem)?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn =
            rustls::ClientConnection::new(Arc::clone(&cfg), name).map_err(io::Error::other)?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        Ok(Client {
            s: Box::new(rustls::StreamOwned::new(conn, tcp)),
            buf: Vec::new(),
            host: addr.to_string(),
        })
    }

    /// Uses an already connected stream (e.g. a tunnel through a CONNECT proxy) as plain HTTP;
    /// `host` goes into the `Host` header.
    pub fn over(tcp: TcpStream, host: &str) -> io::Result<Client> {
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        Ok(Client {
            s: Box::new(tcp),
            buf: Vec::new(),
            host: host.to_string(),
        })
    }

    /// Like [`Client::over`] with TLS on top, verifying the server as `server_name` against
    /// `ca_pem`.
    pub fn tls_over(
        tcp: TcpStream,
        host: &str,
        server_name: &str,
        ca_pem: &str,
    ) -> io::Result<Client> {
        let cfg = crate::pki::client_config(ca_pem)?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn =
            rustls::ClientConnection::new(Arc::clone(&cfg), name).map_err(io::Error::other)?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        Ok(Client {
            s: Box::new(rustls::StreamOwned::new(conn, tcp)),
            buf: Vec::new(),
            host: host.to_string(),
        })
    }

    /// Connects to a simulator's API server (127.0.0.1, test CA).
    pub fn api(sim: &crate::Sim) -> io::Result<Client> {
        Client::tls(
            &format!("127.0.0.1:{}", sim.api_port()),
            "127.0.0.1",
            crate::pki::CA_CRT,
        )
    }

    /// Sends a request and reads the response. `Host` and `Content-Length` are added.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        let chunked_req = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        if !chunked_req && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.s.write_all(&bytes)?;
        self.s.flush()?;
        loop {
            let r = self.read_response(method == "HEAD")?;
            if r.status != 100 {
                return Ok(r);
            }
        }
    }

    /// A request with a bearer token and optional JSON-ish body.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> io::Result<Response> {
        let auth = format!("Bearer {token}");
        let mut h = vec![
            ("Authorization", auth.as_str()),
            ("Accept", "application/json"),
        ];
        if let Some(ct) = content_type {
            h.push(("Content-Type", ct));
        }
        self.request(method, path, &h, body.as_bytes())
    }

    fn fill(&mut self) -> io::Result<bool> {
        let mut tmp = [0u8; 16 * 1024];
        match self.s.read(&mut tmp) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(timeout_err())
            }
            Err(e) => Err(e),
        }
    }

    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let l: Vec<u8> = self.buf.drain(..p + 2).collect();
                return Ok(String::from_utf8_lossy(&l[..p]).into_owned());
            }
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a full line",
                ));
            }
        }
    }

    fn need(&mut self, n: usize) -> io::Result<()> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-body",
                ));
            }
        }
        Ok(())
    }

    fn read_response(&mut self, head: bool) -> io::Result<Response> {
        let status_line = self.line()?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
            chunked: false,
            chunks: 0,
        };
        if head || status == 100 || status == 204 || status == 304 {
            return Ok(r);
        }
        if r.header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            r.chunked = true;
            loop {
                let size_line = self.line()?;
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                        })?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                self.need(size + 2)?;
                r.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                r.chunks += 1;
            }
        } else if let Some(n) = r
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            self.need(n)?;
            r.body = self.buf.drain(..n).collect();
        } else {
            while self.fill()? {}
            r.body = std::mem::take(&mut self.buf);
        }
        Ok(r)
    }
}

/// Decodes a complete chunked body (for unit tests of the encoder).
pub fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let p = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&data[..p]).ok()?.trim(), 16).ok()?;
        data = &data[p + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        if data.get(size..size + 2)? != b"\r\n" {
            return None;
        }
        data = &data[size + 2..];
    }
}

/// One-shot plain GET/PUT/POST against `base` (e.g. the IMDS URL).
pub fn plain_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    Client::plain(base)?.request(method, path, headers, body)
}
