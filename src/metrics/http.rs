//! The `/metrics` endpoint of `watch --metrics-listen`: a small HTTP/1.x server on its own
//! threads that answers `GET /metrics` with the latest page the watch published
//! ([`Page`]), 404 for other paths, 405 for other methods. It never reads the watch's
//! state itself: the reading loop publishes a rendered page, the server only copies it.
//!
//! Anyone who can reach the port can connect, so every resource is bounded: the request
//! head is read into one buffer of [`MAX_HEAD`] bytes (more is answered 431), at most
//! [`MAX_HEADERS`] headers, the body is never read, a connection gets [`DEADLINE`] from
//! the moment a worker takes it to the last byte written (a slow client is dropped),
//! [`WORKERS`] connections are served at once and [`QUEUE`] more wait; past that a
//! connection is closed at once. A few silent clients delay a scrape by a deadline at
//! most; they cannot grow memory or threads.
//! Each answer closes its connection. Requests are parsed with `httparse`, the parser
//! `hyper` uses, which allocates nothing.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CONTENT_TYPE, MetricsError};

/// The largest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 << 10;
/// The most headers a request may have.
pub const MAX_HEADERS: usize = 32;
/// From a worker taking a connection to the answer written: a slower client is dropped.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const WORKERS: usize = 4;
/// Accepted connections waiting for a worker; more are closed at once.
pub const QUEUE: usize = 16;

/// The page `/metrics` serves: the reading loop replaces it, the server copies it out.
#[derive(Clone, Default)]
pub struct Page(Arc<Mutex<String>>);

impl Page {
    /// An empty page.
    pub fn new() -> Page {
        Page::default()
    }

    /// Replaces the page.
    pub fn publish(&self, text: String) {
        match self.0.lock() {
            Ok(mut page) => *page = text,
            Err(poisoned) => *poisoned.into_inner() = text,
        }
    }

    fn get(&self) -> String {
        match self.0.lock() {
            Ok(page) => page.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A running server; dropping it stops the threads.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` (port 0: one the system picks; [`Server::addr`] says which) and
    /// serves `page`.
    pub fn start(addr: SocketAddr, page: Page) -> Result<Server, MetricsError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MetricsError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MetricsError::Listen { addr, source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel::<TcpStream>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(WORKERS);
        for _ in 0..WORKERS {
            let rx = Arc::clone(&rx);
            let page = page.clone();
            workers.push(std::thread::spawn(move || work(&rx, &page)));
        }
        let acceptor = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                accept(&listener, &tx, &stop);
                drop(tx);
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        Ok(Server {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept; its connection is seen after the flag and dropped.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept(listener: &TcpListener, tx: &SyncSender<TcpStream>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else {
            // Out of descriptors or an aborted connection: wait a little rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        match tx.try_send(stream) {
            Ok(()) => {}
            // Every worker busy and the queue full: closed unanswered.
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn work(rx: &Mutex<Receiver<TcpStream>>, page: &Page) {
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut stream) = next else {
            return;
        };
        let _ = serve(&mut stream, Instant::now() + DEADLINE, page);
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

/// Reads one request head within `deadline` and answers it.
fn serve(stream: &mut TcpStream, deadline: Instant, page: &Page) -> io::Result<()> {
    let mut buf = [0u8; MAX_HEAD];
    let mut len = 0;
    let answer = loop {
        if len == buf.len() {
            break Answer::TooLarge;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if let Some(answer) = route(&buf[..len]) {
            break answer;
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(());
    }
    stream.set_write_timeout(Some(left))?;
    let (status, body, head_only) = match answer {
        Answer::Metrics { head_only } => ("200 OK", page.get(), head_only),
        Answer::NotFound => ("404 Not Found", "not found: try /metrics\n".into(), false),
        Answer::MethodNotAllowed => ("405 Method Not Allowed", "GET or HEAD\n".into(), false),
        Answer::BadRequest => ("400 Bad Request", "bad request\n".into(), false),
        Answer::TooLarge => (
            "431 Request Header Fields Too Large",
            "request head too large\n".into(),
            false,
        ),
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut allow = "";
    if answer == Answer::MethodNotAllowed {
        allow = "Allow: GET, HEAD\r\n";
    }
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// The answer to a request head, or `None` while it is incomplete.
fn route(head: &[u8]) -> Option<Answer> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(Answer::TooLarge),
        Err(_) => Some(Answer::BadRequest),
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            Some(match (req.method, path) {
                (Some("GET"), "/metrics") => Answer::Metrics { head_only: false },
                (Some("HEAD"), "/metrics") => Answer::Metrics { head_only: true },
                (Some("GET" | "HEAD"), _) => Answer::NotFound,
                _ => Answer::MethodNotAllowed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn server(text: &str) -> Server {
        let page = Page::new();
        page.publish(text.to_string());
        Server::start("127.0.0.1:0".parse().unwrap(), page).unwrap()
    }

    #[test]
    fn serves_the_page_at_metrics_only() {
        let s = server("logward_lines_total{command=\"watch\"} 3\n");
        let ok = ask(s.addr(), b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.ends_with("\r\n\r\nlogward_lines_total{command=\"watch\"} 3\n"),
            "{ok}"
        );
        let query = ask(s.addr(), b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(query.starts_with("HTTP/1.1 200 OK\r\n"), "{query}");
        let head = ask(s.addr(), b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let other = ask(s.addr(), b"GET / HTTP/1.1\r\n\r\n");
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
        let post = ask(
            s.addr(),
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
        let junk = ask(s.addr(), b"\x16\x03\x01 hello\r\n\r\n");
        assert!(junk.starts_with("HTTP/1.1 400"), "{junk}");
    }

    #[test]
    fn an_endless_head_is_refused_with_bounded_memory() {
        let s = server("x 1\n");
        let mut req = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', MAX_HEAD * 2));
        let mut c = TcpStream::connect(s.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server may close before everything is sent.
        let _ = c.write_all(&req);
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        assert!(out.is_empty() || out.starts_with("HTTP/1.1 431"), "{out}");
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("H{i}: v\r\n"))
            .collect();
        let out = ask(
            s.addr(),
            format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes(),
        );
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    }

    /// A client that connects and says nothing does not keep the others out for long,
    /// and is dropped once the deadline passes.
    #[test]
    fn silent_clients_do_not_block_the_server() {
        let s = server("x 1\n");
        let silent: Vec<TcpStream> = (0..WORKERS)
            .map(|_| TcpStream::connect(s.addr()).unwrap())
            .collect();
        let started = Instant::now();
        let ok = ask(s.addr(), b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(started.elapsed() < DEADLINE * 3);
        for mut c in silent {
            c.set_read_timeout(Some(DEADLINE * 3)).unwrap();
            let mut b = [0u8; 16];
            // Closed by the server without an answer.
            assert!(matches!(c.read(&mut b), Ok(0) | Err(_)));
        }
    }
}
