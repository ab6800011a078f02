//! The `crm-server` command line, run as a process over a temporary SQLite
//! file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::temp_dir;

const BIN: &str = env!("CARGO_BIN_EXE_crm-server");

struct Cli {
    dir: PathBuf,
    db: String,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new(label: &str) -> Self {
        let dir = temp_dir(label);
        let db = format!("sqlite://{}/crm.db?mode=rwc", dir.display());
        Self { dir, db }
    }

    /// A command with a clean environment (only DATABASE_URL and `env`), run
    /// in the temporary folder so no stray crm.toml is read.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).env_clear().env("DATABASE_URL", &self.db).env("RUST_LOG", "warn").current_dir(&self.dir);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let Output { status, stdout, stderr } = self.command(args, env).output().expect("run crm-server");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

impl Run {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

/// The word after `prefix` on the line that starts with it.
fn after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {text}"))
}

fn token_in(text: &str) -> String {
    text.split_whitespace().find(|w| w.starts_with("crm_")).unwrap_or_else(|| panic!("no key in {text}")).to_owned()
}

#[test]
fn help_mentions_every_subcommand() {
    let cli = Cli::new("help");
    let help = cli.run(&["--help"]).ok().stdout;
    for cmd in ["serve", "migrate", "account", "api-key", "contacts"] {
        assert!(help.contains(cmd), "{cmd} in {help}");
    }
    #[cfg(feature = "whatsapp-web")]
    {
        let help = cli.run(&["channel", "pair", "--help"]).ok().stdout;
        assert!(help.contains("--phone") && help.contains("QR"), "{help}");
    }
    assert!(help.contains("DATABASE_URL"), "{help}");
    let help = cli.run(&["api-key", "--help"]).ok().stdout;
    for cmd in ["create", "list", "revoke"] {
        assert!(help.contains(cmd), "{cmd} in {help}");
    }
    let help = cli.run(&["contacts", "import", "--help"]).ok().stdout;
    assert!(help.contains("--account") && help.contains("CSV"), "{help}");
    let bad = cli.run(&["frobnicate"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("frobnicate"), "{}", bad.stderr);
}

#[test]
fn a_bad_setting_is_named_and_exits_non_zero() {
    let cli = Cli::new("badcfg");
    let r = cli.run_env(&["migrate"], &[("PORT", "http")]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("PORT"), "{}", r.stderr);
    let r = cli.run_env(&["migrate"], &[("CRM_LOG_FORMAT", "xml")]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("CRM_LOG_FORMAT"), "{}", r.stderr);
    let r = cli.run_env(&["migrate"], &[("DATABASE_URL", "mysql://root:topsecret@127.0.0.1/crm")]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("DATABASE_URL"), "{}", r.stderr);
    assert!(!r.stderr.contains("topsecret"), "{}", r.stderr);
    std::fs::write(cli.dir.join("crm.toml"), "body_limit_bytes = 1\n").unwrap();
    let r = cli.run(&["migrate"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("body_limit_bytes"), "{}", r.stderr);
}

#[test]
fn an_unreachable_database_fails_without_printing_its_password() {
    let cli = Cli::new("badpg");
    let url = "postgres://crm:hunter2-secret@127.0.0.1:1/crm";
    for args in [&["migrate"][..], &["serve"][..]] {
        let r = cli.run_env(args, &[("DATABASE_URL", url), ("CRM_LISTEN", "127.0.0.1:0")]);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("crm-server: "), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn accounts_and_api_keys() {
    let cli = Cli::new("keys");
    assert!(cli.run(&["migrate"]).ok().stdout.contains("migrations applied"));
    let out = cli.run(&["account", "create", "--name", "Acme"]).ok().stdout;
    let account = after(&out, "account ").to_owned();
    assert!(out.contains("(Acme)"), "{out}");
    let owner = token_in(&out);

    let out = cli.run(&["api-key", "create", "--account", &account, "--name", "ci", "--role", "agent"]).ok().stdout;
    let key_id = after(&out, "key ").to_owned();
    assert!(out.contains("(ci, agent)"), "{out}");
    let agent = token_in(&out);

    let list = cli.run(&["api-key", "list", "--account", &account]).ok().stdout;
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(&key_id) && list.contains("owner") && list.contains("agent") && list.contains("active"));
    assert!(!list.contains(&owner) && !list.contains(&agent), "secrets are never listed: {list}");

    let out = cli.run(&["api-key", "revoke", "--account", &account, "--id", &key_id]).ok().stdout;
    assert!(out.contains(&format!("revoked {key_id} (ci)")), "{out}");
    let list = cli.run(&["api-key", "list", "--account", &account]).ok().stdout;
    let line = list.lines().find(|l| l.contains(&key_id)).unwrap();
    assert!(line.contains("revoked"), "{list}");

    // Wrong account or id: a clear failure.
    let other = uuid::Uuid::now_v7().to_string();
    let r = cli.run(&["api-key", "revoke", "--account", &other, "--id", &key_id]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    let r = cli.run(&["api-key", "create", "--account", &other, "--name", "x"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("account not found"), "{}", r.stderr);
    let r = cli.run(&["api-key", "create", "--account", &account, "--name", "x", "--role", "king"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("king"), "{}", r.stderr);
    let r = cli.run(&["api-key", "list", "--account", "not-a-uuid"]);
    assert_ne!(r.code, 0);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn contacts_import_reports_rejected_lines() {
    let cli = Cli::new("import");
    let out = cli.run(&["account", "create", "--name", "Acme"]).ok().stdout;
    let account = after(&out, "account ").to_owned();
    let csv = write(
        &cli.dir,
        "contacts.csv",
        "name,phone,email,tags,lead_stage\n\
         Ana Souza,+55 11 98765-4321,ana@example.com,vip;lead,qualified\n\
         Bruno,11 91234-5678,,lead,\n\
         Telefone Ruim,12,,,\n\
         Ana Sem Nove,+55 11 8765-4321,,,\n\
         Carla,(21) 99876-5432,carla@example.com,,won\n\
         Davi,+55 31 99999-0000,not-an-email,,\n\
         Eva,+55 41 98888-7777,,,sideways\n",
    );
    let r = cli.run(&["contacts", "import", &csv, "--account", &account]).ok();
    let out = r.stdout;
    assert!(out.contains("imported 3 contact(s); rejected 4"), "{out}");
    let line = |n: usize| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("line {n}:")))
            .unwrap_or_else(|| panic!("line {n} in {out}"))
            .to_owned()
    };
    assert!(line(4).contains("phone"), "{}", line(4));
    assert!(
        line(5).contains("phone") && line(5).contains("line 2"),
        "the duplicate names the line it repeats: {}",
        line(5)
    );
    assert!(line(7).contains("email"), "{}", line(7));
    assert!(line(8).contains("lead_stage") || line(8).contains("stage"), "{}", line(8));
    for ok in [2, 3, 6] {
        assert!(!out.contains(&format!("line {ok}:")), "line {ok} was imported: {out}");
    }

    // Importing the same file again rejects every row as existing.
    let again = cli.run(&["contacts", "import", &csv, "--account", &account, "--batch", "2"]).ok().stdout;
    assert!(again.contains("imported 0 contact(s); rejected 7"), "{again}");
    assert!(again.contains("line 2:") && again.contains("line 6:"), "{again}");

    // Unusable files fail as a whole.
    let bad = write(&cli.dir, "bad.csv", "nome_errado;fone\nAna;123\n");
    let r = cli.run(&["contacts", "import", &bad, "--account", &account]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("name") && r.stderr.contains("phone"), "{}", r.stderr);
    let r = cli.run(&["contacts", "import", "missing.csv", "--account", &account]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("missing.csv"), "{}", r.stderr);
    let other = uuid::Uuid::now_v7().to_string();
    let r = cli.run(&["contacts", "import", &csv, "--account", &other]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("account not found"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_the_first_key_serves_and_stops_on_sigterm() {
    let cli = Cli::new("serve");
    let mut cmd = tokio::process::Command::from(
        cli.command(&["serve"], &[("CRM_LISTEN", "127.0.0.1:0"), ("CRM_LOG_FORMAT", "json"), ("RUST_LOG", "info")]),
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn crm-server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .expect("the server prints where it listens")
            .unwrap()
            .expect("stdout open");
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("crm listening on ") {
            break rest.trim().to_owned();
        }
    };
    assert!(printed.contains("First start"), "{printed}");
    let key = token_in(&printed);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client.get(format!("{base}/api/v1/account")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(format!("{base}/api/v1/contacts")).bearer_auth("crm_wrong_key").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The first start also prints the dashboard's owner login, and it works.
    let login = printed
        .lines()
        .find_map(|l| l.strip_prefix("Dashboard login (shown only now): "))
        .expect("the owner login is printed");
    let (email, password) = login.trim().split_once(" / ").expect("e-mail / password");
    assert_eq!(email, crm_http::BOOTSTRAP_OWNER_EMAIL);
    let next = tokio::time::timeout(Duration::from_secs(60), stdout.next_line()).await.unwrap().unwrap();
    assert_eq!(next.as_deref().map(str::trim), Some(format!("dashboard: {base}/dashboard").as_str()));
    let body = serde_json::json!({ "email": email, "password": password });
    let r = client.post(format!("{base}/api/v1/auth/login")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("stops on SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).await.unwrap();
    assert!(logs.contains("\"status\":200") || logs.contains("status"), "request logs: {logs}");
    assert!(!logs.contains(&key), "the key never reaches the logs");
    assert!(!logs.contains(password), "the owner's password never reaches the logs");
    assert!(!logs.contains("crm_wrong_key"), "presented tokens never reach the logs");
    for l in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "JSON log lines: {l}");
    }
    // A second start on the same database prints no new key.
    let mut cmd = tokio::process::Command::from(cli.command(&["serve"], &[("CRM_LISTEN", "127.0.0.1:0")]));
    cmd.stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), stdout.next_line()).await.unwrap().unwrap().unwrap();
        printed.push_str(&line);
        if line.starts_with("crm listening on") {
            break;
        }
    }
    assert!(!printed.contains("First start") && !printed.contains("crm_"), "{printed}");
    let pid = child.id().unwrap().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Web and workers apart: `serve --no-workers` queues and never sends; a
/// `crm-server worker` process on the same database sends, serves its
/// metrics, and stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_sends_what_a_web_only_server_queued() {
    let cli = Cli::new("worker");
    let mut web =
        tokio::process::Command::from(cli.command(&["serve", "--no-workers"], &[("CRM_LISTEN", "127.0.0.1:0")]));
    web.stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true);
    let mut web = web.spawn().expect("spawn crm-server serve");
    let mut out = BufReader::new(web.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), out.next_line()).await.unwrap().unwrap().unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("crm listening on ") {
            break rest.trim().to_owned();
        }
    };
    let key = token_in(&printed);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let contact: serde_json::Value = http
        .post(format!("{base}/api/v1/contacts"))
        .bearer_auth(&key)
        .json(&serde_json::json!({ "name": "Ana", "phone": "+5511987654321" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queued = http
        .post(format!("{base}/api/v1/messages"))
        .bearer_auth(&key)
        .json(&serde_json::json!({ "contact_id": contact["id"], "text": "Olá" }))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
    let message: serde_json::Value = queued.json().await.unwrap();
    let status = |http: reqwest::Client, base: String, key: String, id: String| async move {
        let m: serde_json::Value = http
            .get(format!("{base}/api/v1/messages/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        m["status"].as_str().unwrap().to_owned()
    };
    let id = message["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status(http.clone(), base.clone(), key.clone(), id.clone()).await,
        "queued",
        "no workers in the web process"
    );

    let mut worker = tokio::process::Command::from(cli.command(&["worker"], &[("CRM_WORKER_LISTEN", "127.0.0.1:0")]));
    worker.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut worker = worker.spawn().expect("spawn crm-server worker");
    let mut wout = BufReader::new(worker.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), wout.next_line()).await.unwrap().unwrap().unwrap();
    let waddr = line.rsplit("http://").next().unwrap().trim().to_owned();
    assert!(line.contains("outbox:dispatch"), "{line}");
    let mut sent = false;
    for _ in 0..200 {
        if status(http.clone(), base.clone(), key.clone(), id.clone()).await == "sent" {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent, "the worker process sent the message");
    assert_eq!(http.get(format!("http://{waddr}/health")).send().await.unwrap().status(), 200);
    let metrics = http.get(format!("http://{waddr}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("crm_worker_items_total{worker=\"outbox:dispatch\",result=\"done\"} 1"), "{metrics}");
    assert_eq!(
        http.get(format!("http://{waddr}/api/v1/contacts")).send().await.unwrap().status(),
        404,
        "no API in a worker"
    );

    for child in [&mut worker, &mut web] {
        let pid = child.id().unwrap().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let st = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("stops on SIGTERM").unwrap();
        assert!(st.success(), "{st:?}");
    }
}

/// On the embedded defaults the first start generates the key that seals
/// credentials into the data folder (owner-only), says so, and reuses it.
#[test]
fn the_embedded_defaults_generate_a_secret_key_once() {
    let cli = Cli::new("secret-key");
    let data = cli.dir.join("data");
    let run = |cli: &Cli| {
        let mut c = cli.command(&["migrate"], &[("CRM_DATA_DIR", data.to_str().unwrap())]);
        c.env_remove("DATABASE_URL");
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run(&cli);
    let path = data.join("secret.keys");
    assert!(first.contains("Generated a secret key") && first.contains("secret.keys"), "{first}");
    let key = std::fs::read_to_string(&path).unwrap();
    crm_core::secrets::Keyring::parse(&key).expect("a usable key");
    assert!(!first.contains(key.trim().split(':').nth(1).unwrap()), "the key itself is never printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let second = run(&cli);
    assert!(!second.contains("Generated"), "{second}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key, "the key is kept");
    // A key printed for CRM_SECRET_KEYS parses back.
    let generated = cli.run(&["secrets", "generate-key", "--id", "prod-1"]).ok();
    let parsed = crm_core::secrets::Keyring::parse(generated.stdout.trim()).unwrap();
    assert_eq!(parsed.active_key_id(), "prod-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_create_start_and_watch() {
    let cli = Cli::new("campaign");
    let out = cli.run(&["account", "create", "--name", "Acme"]).ok().stdout;
    let account = after(&out, "account ").to_owned();
    // A channel, a template and contacts, through the library on the same file.
    let config = crm_http::Config {
        database_url: Some(cli.db.clone().into()),
        secret_keys: Some(crate::helpers::test_keys()),
        ..Default::default()
    };
    let parts = crm_http::Server::builder(config).bootstrap(false).assemble(false).await.expect("assemble");
    let crm = parts.state.crm().clone();
    let aid: crm_core::AccountId = account.parse().unwrap();
    let channel = crm_core::NewChannel { kind: "recording".into(), name: "Loja".into(), ..Default::default() };
    crm.create_channel(aid, channel).await.unwrap();
    let t = crm_core::NewTemplate {
        name: "promo".into(),
        body: "Oi {{first_name}}, {{oferta}}".into(),
        ..Default::default()
    };
    crm.create_template(aid, t).await.unwrap();
    for (n, tags) in [(1, vec!["vip"]), (2, vec!["vip"]), (3, vec![]), (4, vec!["vip"])] {
        let c = crm_core::NewContact {
            name: format!("Ana {n}"),
            phone: crate::helpers::phone(n),
            tags: tags.into_iter().map(String::from).collect(),
            ..Default::default()
        };
        crm.create_contact(aid, c).await.unwrap();
    }

    let help = cli.run(&["campaign", "--help"]).ok().stdout;
    for cmd in ["create", "list", "start", "pause", "resume", "cancel", "delete", "watch"] {
        assert!(help.contains(cmd), "{cmd} in {help}");
    }
    let r =
        cli.run(&["campaign", "create", "--account", &account, "--name", "BF", "--template", "promo", "--tag", "vip"]);
    assert_ne!(r.code, 0, "a missing variable is refused before anything is stored");
    let r =
        cli.run(&["campaign", "create", "--account", &account, "--name", "BF", "--template", "nope", "--tag", "vip"]);
    assert!(r.code != 0 && r.stderr.contains("not found"), "{}", r.stderr);
    let out = cli
        .run(&[
            "campaign",
            "create",
            "--account",
            &account,
            "--name",
            "BF",
            "--template",
            "promo",
            "--tag",
            "vip",
            "--var",
            "oferta=30%",
            "--start",
        ])
        .ok()
        .stdout;
    assert!(out.contains("running"), "{out}");
    let id = after(&out, "campaign ").to_owned();
    let listed = cli.run(&["campaign", "list", "--account", &account]).ok().stdout;
    assert!(listed.contains(&id), "{listed}");
    let watched = cli.run(&["campaign", "watch", "--account", &account, &id, "--work"]).ok().stdout;
    assert!(watched.contains("completed: 3 recipient(s), sent 3"), "{watched}");
    let r = cli.run(&["campaign", "pause", "--account", &account, &id]);
    assert!(r.code != 0 && r.stderr.contains("cannot become paused"), "{}", r.stderr);
    let deleted = cli.run(&["campaign", "delete", "--account", &account, &id]).ok().stdout;
    assert!(deleted.contains(&format!("deleted campaign {id}")), "{deleted}");
    let listed = cli.run(&["campaign", "list", "--account", &account]).ok().stdout;
    assert!(!listed.contains(&id), "{listed}");
    let r = cli.run(&["campaign", "delete", "--account", &account, &id]);
    assert!(r.code != 0 && r.stderr.contains("not found"), "{}", r.stderr);
}
