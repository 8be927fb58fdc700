//! Where SMS messages go: the gateway a message is handed to (a provider's webhook, or the log in
//! development) and the message itself. Below both the code logic (`sms`) and the outbox that drains
//! into a gateway (`sms_outbox`), so neither imports the other for it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_lc_rs::hmac;

use crate::identity::Phone;

/// One message to send.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SmsMessage {
    pub to: String,
    pub template: String,
    pub code: String,
    pub text: String,
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Where codes go: a real SMS provider behind a webhook, or the log in development. `now` is when
/// the message is handed over (epoch seconds).
pub trait SmsGateway: Send + Sync {
    fn send<'a>(&'a self, message: &'a SmsMessage, now: i64) -> SendFuture<'a>;
}

/// Development only: writes the message to the log. Refused at start in production.
pub struct ConsoleGateway;

impl SmsGateway for ConsoleGateway {
    fn send<'a>(&'a self, message: &'a SmsMessage, _now: i64) -> SendFuture<'a> {
        Box::pin(async move {
            tracing::warn!(to = %mask(&message.to), code = %message.code, "SMS (console gateway, development only)");
            Ok(())
        })
    }
}

fn mask(e164: &str) -> String {
    Phone::parse(e164)
        .map(|p| p.masked())
        .unwrap_or_else(|_| "***".into())
}

/// POSTs `{"to","template","code","text"}` as JSON, signed with HMAC-SHA256 over `timestamp.body` in
/// `X-Yunid-Signature: sha256=<hex>` (with `X-Yunid-Timestamp`), retrying network errors and 5xx.
pub struct WebhookGateway {
    url: String,
    key: hmac::Key,
    http: reqwest::Client,
}

impl WebhookGateway {
    pub fn new(url: String, secret: &str) -> anyhow::Result<WebhookGateway> {
        anyhow::ensure!(
            secret.len() >= 16,
            "sms_webhook_secret must have at least 16 characters"
        );
        crate::services::registry::check_uri(&url, true)?;
        Ok(WebhookGateway {
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }

    /// The signature header value for a body sent at `timestamp`.
    pub fn signature(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
        let mut signed = timestamp.to_string().into_bytes();
        signed.push(b'.');
        signed.extend_from_slice(body);
        let tag = hmac::sign(key, &signed);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }
}

impl SmsGateway for WebhookGateway {
    fn send<'a>(&'a self, message: &'a SmsMessage, now: i64) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(message)?;
            let mut last = String::new();
            for attempt in 0..3u32 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                // Every try carries the time the message was handed over: the provider's replay
                // window is minutes, the three tries take seconds.
                let timestamp = now;
                let result = self
                    .http
                    .post(&self.url)
                    .header("content-type", "application/json")
                    .header("x-yunid-timestamp", timestamp.to_string())
                    .header("x-yunid-signature", Self::signature(&self.key, timestamp, &body))
                    .body(body.clone())
                    .send()
                    .await;
                match result {
                    Ok(res) if res.status().is_success() => return Ok(()),
                    // A 4xx will not get better by retrying.
                    Ok(res) if res.status().is_client_error() => {
                        anyhow::bail!("SMS webhook refused the message: HTTP {}", res.status())
                    }
                    Ok(res) => last = format!("HTTP {}", res.status()),
                    Err(e) => last = crate::services::outbound::error_text(e),
                }
            }
            anyhow::bail!("SMS webhook failed after 3 attempts: {last}")
        })
    }
}
