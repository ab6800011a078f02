//! The SMTP adapter against a real (tiny) SMTP server started by the test
//! on 127.0.0.1: it speaks enough ESMTP (EHLO, AUTH PLAIN, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT) to receive what lettre sends, refuses a bad
//! login (535), a recipient permanently (550) or for now (451).
#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crm_connectors::smtp::{Smtp, SmtpSecurity};
use crm_core::Error;
use crm_core::ports::connectors::{Attachment, Mailer};
use crm_core::testing::connectors::{mailer, sample_draft};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One accepted message: envelope sender, recipients and the raw data.
#[derive(Debug, Clone, Default)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
}

#[derive(Clone, Default)]
struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
}

const USER: &str = "loja";
const PASSWORD: &str = "s3nha-smtp";

async fn serve(sink: Sink, socket: tokio::net::TcpStream) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink.local ESMTP test\r\n").await.unwrap();
    let mut current = Received::default();
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250-sink.local\r\n250-AUTH PLAIN\r\n250 8BITMIME".into()
        } else if let Some(b64) = upper.strip_prefix("AUTH PLAIN ").map(|_| &line[11..]) {
            let expected = STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
            if b64.trim() == expected {
                "235 2.7.0 Authentication successful".into()
            } else {
                "535 5.7.8 Authentication credentials invalid".into()
            }
        } else if upper.starts_with("MAIL FROM:") {
            current = Received { from: line[10..].trim().to_owned(), ..Received::default() };
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let to = line[8..].trim().to_owned();
            if to.contains("reject@") {
                "550 5.1.1 No such user".into()
            } else if to.contains("later@") {
                "451 4.3.0 Try again later".into()
            } else {
                current.to.push(to);
                "250 2.1.5 Ok".into()
            }
        } else if upper == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await.unwrap();
            let mut data = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            current.data = data;
            sink.received.lock().unwrap().push(std::mem::take(&mut current));
            "250 2.0.0 Ok: queued as 4A1B2C3D".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await.unwrap();
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 Ok".into()
        } else {
            "502 5.5.2 Command not recognized".into()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await.unwrap();
    }
}

async fn start() -> (Sink, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = Sink::default();
    let s = sink.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(s.clone(), socket));
        }
    });
    (sink, port)
}

fn smtp(port: u16, password: &str) -> Smtp {
    let login = Some((USER.to_owned(), password.to_owned()));
    Smtp::new("127.0.0.1", port, SmtpSecurity::Plain, login, None, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn the_mailer_contract_holds_against_a_local_smtp_server() {
    let (sink, port) = start().await;
    let m = smtp(port, PASSWORD);
    mailer(&m, &|| sink.received.lock().unwrap().len()).await;
}

#[tokio::test]
async fn sends_a_multipart_message_with_every_recipient() {
    let (sink, port) = start().await;
    let m = smtp(port, PASSWORD);
    let mut email = sample_draft().render().unwrap();
    email.attachments.push(Attachment {
        filename: "pedido.pdf".into(),
        content_type: "application/pdf".into(),
        content: b"%PDF\xff\xfe\x00\x01binary".to_vec(),
    });
    let sent = m.send(&email).await.unwrap();
    assert!(sent.provider_id.unwrap().contains("queued as 4A1B2C3D"));
    let got = sink.received.lock().unwrap()[0].clone();
    assert_eq!(got.from, "<loja@example.com>");
    assert_eq!(
        got.to,
        ["<ana@example.com>", "<gerente@example.com>", "<arquivo@example.com>"],
        "bcc is an envelope recipient"
    );
    let data = &got.data;
    assert!(
        data.contains("From: \"Loja\" <loja@example.com>") || data.contains("From: Loja <loja@example.com>"),
        "{data}"
    );
    assert!(
        data.contains("To: \"Ana Souza\" <ana@example.com>") || data.contains("To: Ana Souza <ana@example.com>"),
        "{data}"
    );
    assert!(data.contains("Cc: gerente@example.com"), "{data}");
    assert!(!data.contains("arquivo@example.com"), "no Bcc header: {data}");
    assert!(data.contains("Reply-To: vendas@example.com"), "{data}");
    assert!(data.contains("Subject: Pedido #42 confirmado"), "{data}");
    assert!(data.contains("multipart/mixed") && data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("text/plain") && data.contains("text/html"), "{data}");
    assert!(data.contains("filename=\"pedido.pdf\"") && data.contains("application/pdf"), "{data}");
    assert!(data.contains(&STANDARD.encode(b"%PDF\xff\xfe\x00\x01binary")), "the attachment is base64: {data}");
}

#[tokio::test]
async fn maps_smtp_refusals() {
    let (sink, port) = start().await;
    let email = sample_draft().render().unwrap();
    let e = smtp(port, "wrong").send(&email).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "a refused login: {e:?}");
    assert!(!format!("{e} {e:?}").contains("wrong"), "the password never shows");

    let m = smtp(port, PASSWORD);
    let mut rejected = email.clone();
    rejected.to = vec![crm_core::ports::connectors::Mailbox::new("reject@example.com")];
    (rejected.cc, rejected.bcc) = (Vec::new(), Vec::new());
    let e = m.send(&rejected).await.unwrap_err();
    assert!(matches!(e, Error::Provider { transient: false, ref code, .. } if code.as_deref() == Some("550")), "{e:?}");
    let mut later = rejected.clone();
    later.to = vec![crm_core::ports::connectors::Mailbox::new("later@example.com")];
    let e = m.send(&later).await.unwrap_err();
    assert!(matches!(e, Error::Provider { transient: true, .. }), "{e:?}");
    assert!(sink.received.lock().unwrap().is_empty());

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = smtp(dead_port, PASSWORD).send(&email).await.unwrap_err();
    assert!(matches!(e, Error::Provider { transient: true, .. }), "no server is transient: {e:?}");
}
