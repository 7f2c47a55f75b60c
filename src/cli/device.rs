//! `idprov client --control ADDR`: the reference client as a long-lived
//! device (issue 25), as firmware on a bench behaves: it keeps its
//! directory (its flash) and provisions again whenever its reset hook says
//! so, over a small TCP control channel, one line per connection.

use super::{fail, EXIT_USAGE};
use idprov::client::{self, ClientOptions};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest control line read.
const LINE_MAX: usize = 4096;

/// How long a control connection may take to send its line.
const LINE_TIME: Duration = Duration::from_secs(5);

/// Serves the control channel until `quit`: `reset` starts a provisioning
/// run with the device's settings (abandoning one still running), `reset
/// URL` one against that directory URL, `reset URL CA` one with that CA
/// pre-provisioned (`-` keeps a setting).
pub(super) async fn serve(opts: ClientOptions, addr: SocketAddr) -> ExitCode {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return fail(EXIT_USAGE, format!("--control {addr}: {e}")),
    };
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!(
        "idprov client: device {} waiting for `reset [URL|- [CA|-]]` or `quit` on {local}",
        opts.device_id
    );
    let mut current: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let mut conn = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                eprintln!("idprov client: control: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let line = match read_line(&mut conn).await {
            Ok(l) => l,
            Err(e) => {
                let _ = conn.write_all(format!("error: {e}\n").as_bytes()).await;
                continue;
            }
        };
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next(), words.next(), words.next()) {
            (Some("reset"), url, ca, None) => {
                if let Some(run) = current.take() {
                    run.abort();
                }
                let mut run_opts = opts.clone();
                // `-` (or nothing): the device's own setting, which for a
                // device started without --url is DNS-SD discovery.
                if let Some(url) = url.filter(|u| *u != "-") {
                    run_opts.url = Some(url.to_string());
                }
                if let Some(ca) = ca.filter(|c| *c != "-") {
                    run_opts.ca = Some(ca.into());
                }
                current = Some(tokio::spawn(provision(run_opts)));
                "ok: provisioning".to_string()
            }
            (Some("quit"), None, None, None) => {
                if let Some(run) = current.take() {
                    run.abort();
                }
                let _ = conn.write_all(b"ok: bye\n").await;
                return ExitCode::SUCCESS;
            }
            _ => format!("error: expected `reset [URL|- [CA|-]]` or `quit`, got {line:?}"),
        };
        let _ = conn.write_all(format!("{answer}\n").as_bytes()).await;
    }
}

/// One provisioning run, said on stderr as a one-shot run says it.
async fn provision(opts: ClientOptions) {
    let id = opts.device_id.clone();
    match client::run(&opts).await {
        Ok(o) => eprintln!(
            "idprov client: {id}: {}, serial {}",
            if o.renewed { "renewed" } else { "provisioned" },
            o.serial
        ),
        Err(e) => eprintln!("idprov client: {id}: {e}"),
    }
}

/// One line (without its end), at most [`LINE_MAX`] bytes within
/// [`LINE_TIME`]; the end of the stream ends it too.
async fn read_line(conn: &mut TcpStream) -> Result<String, String> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 512];
        loop {
            let n = conn.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            got.extend_from_slice(&buf[..n]);
            if got.contains(&b'\n') {
                return Ok(());
            }
            if got.len() > LINE_MAX {
                return Err(format!("a line longer than {LINE_MAX} bytes"));
            }
        }
    };
    tokio::time::timeout(LINE_TIME, read)
        .await
        .map_err(|_| format!("no line within {} s", LINE_TIME.as_secs()))??;
    let line = got.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8(line.to_vec())
        .map(|l| l.trim().to_string())
        .map_err(|_| "a line that is not UTF-8".to_string())
}
