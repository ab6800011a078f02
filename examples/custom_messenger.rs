//! An app plugging its own provider into the server: a `console` channel
//! kind whose messenger prints each message, registered with the server
//! builder next to the built-in kinds, plus an inbound route of its own.
//!
//! ```text
//! cargo run --example custom_messenger --features server,sqlite
//! ```
//!
//! Then, with the owner key it prints:
//!
//! ```text
//! curl -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
//!   -d '{"kind":"console","name":"Terminal","is_default":true}' http://127.0.0.1:8080/api/v1/channels
//! curl -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
//!   -d '{"name":"Ana","phone":"+55 11 98765-4321"}' http://127.0.0.1:8080/api/v1/contacts
//! curl -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
//!   -d '{"contact_id":"<id>","text":"Olá!"}' http://127.0.0.1:8080/api/v1/messages
//! ```

use crm::secrets::Credentials;
use crm::server::{Config, Server};
use crm::{
    Capabilities, Channel, Health, HealthCheck, Messenger, MessengerFactory, OutboundMessage, Result, SendReceipt,
    async_trait,
};
use std::sync::Arc;
use std::time::Duration;

/// Prints every message instead of delivering it.
#[derive(Debug)]
struct Console {
    channel: String,
}

#[async_trait]
impl HealthCheck for Console {
    fn name(&self) -> &str {
        "console"
    }
    async fn check(&self) -> Health {
        Health::healthy(Duration::ZERO)
    }
}

#[async_trait]
impl Messenger for Console {
    fn provider(&self) -> &str {
        "console"
    }
    fn capabilities(&self) -> Capabilities {
        // Text only, at most 5 messages a second: the governor paces to it.
        Capabilities {
            kinds: [crm::MessageKind::Text].into_iter().collect(),
            max_messages_per_second: Some(5),
            ..Capabilities::everything()
        }
    }
    async fn send(&self, m: &OutboundMessage) -> Result<SendReceipt> {
        println!("[{}] to {}: {}", self.channel, m.to, m.content.preview());
        Ok(SendReceipt { provider_message_id: format!("console.{}", m.message_id) })
    }
}

/// Builds a `Console` for every channel of the `console` kind.
#[derive(Debug)]
struct ConsoleFactory;

#[async_trait]
impl MessengerFactory for ConsoleFactory {
    fn kind(&self) -> &str {
        "console"
    }
    fn validate(&self, _channel: &Channel, _credentials: Option<&Credentials>) -> Result<()> {
        Ok(())
    }
    async fn build(&self, channel: &Channel, _credentials: Credentials) -> Result<Arc<dyn Messenger>> {
        Ok(Arc::new(Console { channel: channel.name.clone() }))
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(None, |k| std::env::var(k).ok())?;
    crm::server::init_tracing(config.log_format, &config.log_filter);
    let hello = axum::Router::new().route("/hooks/console", axum::routing::get(|| async { "console channel ready" }));
    let mut server = Server::builder(config).messenger_factory(Arc::new(ConsoleFactory)).routes(hello).build().await?;
    if let Some(b) = server.take_bootstrap() {
        println!("owner key (shown once): {}", b.admin_key.expose());
    }
    println!("listening on http://{}", server.local_addr()?);
    server.run_until_stopped().await?;
    Ok(())
}
