//! One Docker Hub request with its retries: through the run's concurrency
//! bound, its rate-limit budget and its time gate, with the bearer token
//! when there is one. What the answer means (done, final, retry) is decided
//! here, and nowhere else in the client.

use super::auth::Token;
use super::budget::{RateHeaders, Refused};
use super::pace::Pace;
use super::{FetchError, HubRun, Stop};
use crate::http::{ReadError, read_capped, transport_reason};
use crate::retry;
use reqwest::{Method, Response, StatusCode, Url, header};
use serde::de::DeserializeOwned;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// What to ask the Hub.
pub(super) struct Call<'a> {
    pub(super) method: Method,
    pub(super) url: Url,
    /// A JSON body (the token exchange).
    pub(super) body: Option<&'a serde_json::Value>,
    /// The most bytes of the answer's body to read.
    pub(super) max_body: usize,
    /// Documents the answer may bring: the time gate keeps room to index them.
    pub(super) expected: usize,
}

/// One attempt's result, as the retry loop sees it.
enum Attempt<T> {
    Done(T),
    Fatal(FetchError),
    /// Retry after `wait` (or a backoff when `None`).
    Retry {
        error: FetchError,
        wait: Option<Duration>,
    },
}

impl HubRun {
    /// One request with retries and the bearer token, decoded as `T`. A 401
    /// with a token renews it once and tries again.
    pub(super) async fn request_json<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        pace: &Pace<'_>,
    ) -> Result<T, Stop> {
        let mut token = self.token(pace).await?;
        loop {
            let result = self.request_bytes(call, pace, token.as_ref()).await;
            match (result, &token) {
                (Err(Stop::Failed(FetchError::Unauthorized(401))), Some(used)) => {
                    match self.renew_after_401(used.generation, pace).await? {
                        Some(renewed) => token = Some(renewed),
                        None => return Err(Stop::Failed(FetchError::Unauthorized(401))),
                    }
                }
                (result, _) => return decode(&result?),
            }
        }
    }

    /// One request with retries, through the concurrency bound, the budget
    /// and the pace; the body of a success.
    ///
    /// No attempt starts once the time before the pace's reserve is gone,
    /// and an attempt's timeout ends there: what cannot be asked in time is
    /// deferred (so is a request still rate limited at that point), while
    /// one whose retries ran out of time after real failures (5xx, timeouts)
    /// failed.
    pub(super) async fn request_bytes(
        &self,
        call: &Call<'_>,
        pace: &Pace<'_>,
        token: Option<&Token>,
    ) -> Result<Vec<u8>, Stop> {
        let options = &self.client.options;
        let expected = call.expected;
        let mut attempt = 0;
        let mut last: Option<FetchError> = None;
        // Out of time: deferred unless the Hub itself kept failing.
        let out_of_time = |last: Option<FetchError>| match last {
            None | Some(FetchError::RateLimited { .. }) => Stop::Deferred,
            Some(error) => Stop::Failed(FetchError::OutOfTime(error.to_string())),
        };
        loop {
            attempt += 1;
            // Held for the attempt (request and body), released for backoff.
            let permit = self.permits.acquire().await;
            let ticket = match self.budget.admit(pace, expected).await {
                Ok(ticket) => ticket,
                Err(Refused::Budget) => return Err(Stop::Deferred),
                Err(Refused::Time) => return Err(out_of_time(last)),
            };
            let room = pace.room(expected);
            let timeout = options.request_timeout.min(room);
            let mut request = self
                .client
                .http
                .request(call.method.clone(), call.url.clone())
                .header(header::ACCEPT, "application/json")
                .timeout(timeout);
            if let Some(token) = token {
                let mut value =
                    header::HeaderValue::try_from(format!("Bearer {}", token.secret.expose()))
                        .map_err(|_| {
                            FetchError::InvalidBody("access token is not a header value".into())
                        })?;
                value.set_sensitive(true);
                request = request.header(header::AUTHORIZATION, value);
            }
            if let Some(body) = call.body {
                request = request.json(body);
            }
            pace.pending.fetch_add(expected, Ordering::SeqCst);
            self.counters.requests.fetch_add(1, Ordering::SeqCst);
            let sent = Instant::now();
            let result = match request.send().await {
                Ok(response) => {
                    let (rate, hold) = self.rate_limit_of(&response);
                    let answer = self.answer(response, call.max_body, attempt).await;
                    pace.observe(sent.elapsed());
                    ticket.settle(true, rate, hold);
                    if let Some(rate) = rate {
                        self.client
                            .learned
                            .limit
                            .store(rate.limit, Ordering::SeqCst);
                    }
                    answer
                }
                Err(error) => {
                    ticket.settle(false, None, None);
                    transport_error(&error, attempt)
                }
            };
            pace.pending.fetch_sub(expected, Ordering::SeqCst);
            if let Some(rtt) = pace.rtt() {
                self.client
                    .learned
                    .rtt_micros
                    .store(rtt.as_micros() as u64, Ordering::SeqCst);
            }
            // The connection goes back to the pool in a task of its own once
            // the body is read; let it run before the next request takes this
            // permit, or that request opens another connection (another TLS
            // handshake) instead of reusing this one.
            tokio::task::yield_now().await;
            drop(permit);
            let (error, wait) = match result {
                Attempt::Done(bytes) => return Ok(bytes),
                Attempt::Fatal(error) => return Err(Stop::Failed(error)),
                // Cut short by the reserve, not by the Hub: no time for it.
                Attempt::Retry {
                    error: FetchError::Timeout { .. },
                    ..
                } if timeout < options.request_timeout => return Err(out_of_time(last)),
                Attempt::Retry { error, wait } => (error, wait),
            };
            if attempt >= options.max_attempts {
                return Err(Stop::Failed(error));
            }
            let wait = wait.unwrap_or_else(|| {
                retry::backoff(attempt, options.backoff_base, options.backoff_cap)
            });
            if wait + pace.needed() >= pace.room(expected) {
                return Err(out_of_time(Some(error)));
            }
            last = Some(error);
            tokio::time::sleep(wait).await;
        }
    }

    /// The budget's view of an answer: its `X-RateLimit-*`, and how long a
    /// 429 holds every request (`Retry-After` in seconds or as a Unix time,
    /// else `X-RateLimit-Reset`).
    fn rate_limit_of(&self, response: &Response) -> (Option<RateHeaders>, Option<Duration>) {
        let headers = response.headers();
        let rate = RateHeaders::read(headers);
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            return (rate, None);
        }
        self.counters.rate_limited.fetch_add(1, Ordering::SeqCst);
        let now = retry::unix_now();
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let hold = header(header::RETRY_AFTER)
            .and_then(|v| retry::parse_retry_after(v, now))
            .or_else(|| {
                header(header::HeaderName::from_static("x-ratelimit-reset"))
                    .and_then(|v| retry::parse_rate_limit_reset(v, now))
            });
        tracing::warn!(
            hold_s = hold.map(|h| h.as_secs()),
            limit = rate.map(|r| r.limit),
            "Docker Hub rate limit reached (429)"
        );
        (rate, hold)
    }

    /// Classifies a response and reads its body (capped) when it is a success.
    async fn answer(&self, response: Response, max_body: usize, attempts: u32) -> Attempt<Vec<u8>> {
        let status = response.status();
        match status {
            StatusCode::OK | StatusCode::CREATED => match read_capped(response, max_body).await {
                Ok(bytes) => Attempt::Done(bytes),
                Err(ReadError::TooLarge) => {
                    Attempt::Fatal(FetchError::BodyTooLarge { limit: max_body })
                }
                Err(ReadError::Transport(error)) => transport_error(&error, attempts),
            },
            StatusCode::NOT_FOUND => Attempt::Fatal(FetchError::NotFound {
                anonymous: self.auth.is_none(),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Attempt::Fatal(FetchError::Unauthorized(status.as_u16()))
            }
            // The budget holds every request as long as the answer said;
            // without a time, back off.
            StatusCode::TOO_MANY_REQUESTS => Attempt::Retry {
                error: FetchError::RateLimited { attempts },
                wait: None,
            },
            s if retry::is_transient(s) => Attempt::Retry {
                error: FetchError::Status {
                    status: s.as_u16(),
                    attempts,
                },
                wait: None,
            },
            s => Attempt::Fatal(FetchError::Status {
                status: s.as_u16(),
                attempts,
            }),
        }
    }
}

/// A success's body as `T`, or a per-image failure that shows what came.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Stop> {
    serde_json::from_slice(bytes)
        .map_err(|e| Stop::Failed(FetchError::InvalidBody(describe_json_error(&e, bytes))))
}

fn transport_error<T>(error: &reqwest::Error, attempts: u32) -> Attempt<T> {
    let error = if error.is_timeout() {
        FetchError::Timeout { attempts }
    } else {
        FetchError::Connection {
            message: transport_reason("Docker Hub", error),
            attempts,
        }
    };
    Attempt::Retry { error, wait: None }
}

/// A JSON error with a hint of what the body was (HTML from a proxy, etc.).
fn describe_json_error(error: &serde_json::Error, body: &[u8]) -> String {
    let start: String = String::from_utf8_lossy(&body[..body.len().min(60)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::secrets::clean(&format!("{error} (body starts with {:?})", start.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_show_the_start_of_the_body() {
        let body = b"<!DOCTYPE html>\n<html><body>Too Many Requests</body></html>";
        let error = serde_json::from_slice::<serde_json::Value>(body).unwrap_err();
        let text = describe_json_error(&error, body);
        assert!(text.contains("<!DOCTYPE html> <html>"), "{text}");
    }
}
