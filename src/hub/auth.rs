//! The bearer-token lifecycle of a run with Docker Hub credentials: a
//! personal access token exchanged at `POST /v2/auth/token`, renewed before
//! it expires, and once more after a 401.

use super::request::{Call, decode};
use super::{HubRun, Stop, pace::Pace};
use crate::config::{HubCredentials, Secret};
use reqwest::Method;
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// A bearer token and when it was issued.
#[derive(Clone)]
pub(super) struct Token {
    pub(super) secret: Arc<Secret>,
    issued: Instant,
    pub(super) generation: u64,
}

/// The run's Docker Hub credentials and the bearer token exchanged for them.
pub(super) struct Auth {
    credentials: HubCredentials,
    token: Mutex<Option<Token>>,
    /// One exchange at a time.
    exchanging: tokio::sync::Mutex<()>,
    /// A 401 renews the token once per run; a second one is final.
    renewed_after_401: AtomicBool,
}

impl Auth {
    pub(super) fn new(credentials: HubCredentials) -> Self {
        Self {
            credentials,
            token: Mutex::new(None),
            exchanging: tokio::sync::Mutex::new(()),
            renewed_after_401: AtomicBool::new(false),
        }
    }

    fn current(&self) -> Option<Token> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.credentials.username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct AccessToken {
    access_token: String,
}

impl HubRun {
    /// The bearer token to send, exchanged (again) when there is none yet or
    /// it is old enough to expire soon.
    pub(super) async fn token(&self, pace: &Pace<'_>) -> Result<Option<Token>, Stop> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let renew_after = self.client.options.token_renew_after;
        let fresh = |token: &Token| token.issued.elapsed() < renew_after;
        if let Some(token) = auth.current().filter(fresh) {
            return Ok(Some(token));
        }
        let _exchanging = auth.exchanging.lock().await;
        if let Some(token) = auth.current().filter(fresh) {
            return Ok(Some(token));
        }
        self.exchange(auth, pace).await.map(Some)
    }

    /// After a 401 with the token of `generation`: a new token, once per run
    /// (`None` when that was used up: the 401 is final).
    pub(super) async fn renew_after_401(
        &self,
        generation: u64,
        pace: &Pace<'_>,
    ) -> Result<Option<Token>, Stop> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let _exchanging = auth.exchanging.lock().await;
        if let Some(token) = auth.current().filter(|t| t.generation > generation) {
            return Ok(Some(token));
        }
        if auth.renewed_after_401.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        tracing::info!("Docker Hub refused the bearer token (401): exchanging it again");
        self.exchange(auth, pace).await.map(Some)
    }

    /// `POST /v2/auth/token`.
    async fn exchange(&self, auth: &Auth, pace: &Pace<'_>) -> Result<Token, Stop> {
        let body = serde_json::json!({
            "identifier": auth.credentials.username,
            "secret": auth.credentials.token.expose(),
        });
        let call = Call {
            method: Method::POST,
            url: self.client.url("v2/auth/token")?,
            body: Some(&body),
            max_body: 64 * 1024,
            expected: 0,
        };
        let bytes = self.request_bytes(&call, pace, None).await?;
        let token: AccessToken = decode(&bytes)?;
        let generation = auth.current().map_or(1, |t| t.generation + 1);
        let token = Token {
            secret: Arc::new(Secret::new(token.access_token)),
            issued: Instant::now(),
            generation,
        };
        *auth.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(token)
    }
}
