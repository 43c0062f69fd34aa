//! Settings from SSM Parameter Store: every parameter under the prefix,
//! decrypted, following every page, read on every run so a change applies
//! at the next one.

use super::{Needs, Settings, SettingsSource};
use crate::error::Error;
use std::collections::BTreeMap;

/// Settings read from SSM under `prefix` on every call.
#[derive(Debug, Clone)]
pub struct SsmSettings<P> {
    store: P,
    prefix: String,
}

impl<P: ParameterStore> SsmSettings<P> {
    pub fn new(store: P, prefix: impl Into<String>) -> Self {
        Self {
            store,
            prefix: prefix.into(),
        }
    }
}

impl<P: ParameterStore> SettingsSource for SsmSettings<P> {
    async fn load(&self, needs: Needs) -> Result<Settings, Error> {
        let parameters = self.store.parameters_by_path(&self.prefix).await?;
        Settings::from_parameters(&self.prefix, &parameters, needs)
    }
}

/// Reads every parameter under a prefix, decrypted, following every page.
/// Keys in the returned map are relative to the prefix (`elasticsearch/url`).
pub trait ParameterStore: Send + Sync {
    fn parameters_by_path(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, Error>> + Send;
}

/// [`ParameterStore`] backed by SSM `GetParametersByPath`.
#[derive(Debug, Clone)]
pub struct SsmParameterStore {
    client: aws_sdk_ssm::Client,
}

impl SsmParameterStore {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }
}

impl ParameterStore for SsmParameterStore {
    async fn parameters_by_path(&self, prefix: &str) -> Result<BTreeMap<String, String>, Error> {
        let prefix = prefix.trim_end_matches('/');
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(prefix)
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        let mut parameters = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| {
                let region = self.client.config().region().map(|r| r.as_ref());
                let call =
                    crate::aws_error::AwsCall::ssm("ssm:GetParametersByPath", prefix, region);
                Error::Ssm {
                    prefix: prefix.to_owned(),
                    message: crate::aws_error::explain(&error, &call),
                }
            })?;
            for parameter in page.parameters() {
                let (Some(name), Some(value)) = (parameter.name(), parameter.value()) else {
                    continue;
                };
                if let Some(key) = name.strip_prefix(prefix).map(|k| k.trim_start_matches('/')) {
                    parameters.insert(key.to_owned(), value.to_owned());
                }
            }
        }
        Ok(parameters)
    }
}
