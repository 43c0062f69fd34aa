//! Namespace listings (`GET /v2/namespaces/{ns}/repositories`, 100 a page,
//! in name order, following `next`): the repositories of a `namespace/*`,
//! or, in listing mode, their counts themselves.

use super::pace::Pace;
use super::plan::ListingJob;
use super::request::Call;
use super::{FetchError, HubRun, PAGE_SIZE, Stop};
use crate::document::RepositoryStats;
use crate::image_ref::{ImageSpec, Repository};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::sync::Mutex;

#[derive(Deserialize)]
struct ListedName {
    name: String,
}

/// What a listing entry must be to be used.
trait ListedEntry: DeserializeOwned {
    fn name(&self) -> &str;
    /// The namespace the entry says it is in, if it says.
    fn namespace(&self) -> Option<&str>;
}

impl ListedEntry for ListedName {
    fn name(&self) -> &str {
        &self.name
    }
    fn namespace(&self) -> Option<&str> {
        None
    }
}

impl ListedEntry for RepositoryStats {
    fn name(&self) -> &str {
        &self.name
    }
    fn namespace(&self) -> Option<&str> {
        Some(&self.namespace)
    }
}

#[derive(Deserialize)]
struct ListingPage<T> {
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    next: Option<String>,
    results: Vec<T>,
}

/// Where a listing stands after a page, for deciding whether to go on.
struct ListingProgress<'a> {
    /// The namespace's repositories, as the first page said.
    count: Option<u64>,
    /// Entries read so far.
    seen: usize,
    /// The last name read (pages are in name order).
    last_name: Option<&'a str>,
}

/// What a listing brought.
#[derive(Default)]
pub(super) struct ListingResult {
    /// Repositories it named (details mode: to fetch next).
    pub(super) repositories: Vec<Repository>,
    /// Counts it carried (listing mode).
    pub(super) stats: Vec<RepositoryStats>,
    /// Names that are not repository names: reported, never put in a URL.
    pub(super) invalid: Vec<String>,
    pub(super) stop: Option<Stop>,
}

/// A name from the listing of `namespace`, checked like a reference.
pub(super) fn listed_repository(namespace: &str, name: &str) -> Result<Repository, String> {
    let reference = format!("{namespace}/{name}");
    match crate::image_ref::parse(&reference) {
        Ok(ImageSpec::Repository(repository))
            if repository.namespace == namespace && repository.name == name =>
        {
            Ok(repository)
        }
        _ => Err(reference),
    }
}

impl HubRun {
    /// Details mode: the names of a `namespace/*`, to fetch one by one.
    pub(super) async fn list_names(&self, job: &ListingJob, pace: &Pace<'_>) -> ListingResult {
        let mut result = ListingResult::default();
        let listed = self
            .list_namespace_pages(
                &job.namespace,
                pace,
                0,
                |_| true,
                |page: Vec<ListedName>| {
                    for entry in page {
                        match listed_repository(&job.namespace, &entry.name) {
                            Ok(repository) => result.repositories.push(repository),
                            Err(reference) => result.invalid.push(reference),
                        }
                    }
                },
            )
            .await;
        result.stop = listed.err();
        result
    }

    /// Listing mode: counts from the listing pages. For a `namespace/*`
    /// every page is read; for repositories named one by one, pages are read
    /// only while fewer pages remain than named repositories are missing
    /// (pages are in name order, so a page past the last missing name ends
    /// it): the rest are fetched one by one.
    pub(super) async fn list_counts(&self, job: &ListingJob, pace: &Pace<'_>) -> ListingResult {
        let mut result = ListingResult::default();
        let wildcard = job.reference.is_some();
        // Shared by the two callbacks, one after the other.
        let missing = Mutex::new(job.named.clone());
        let lock = || missing.lock().unwrap_or_else(|e| e.into_inner());
        let listed = self
            .list_namespace_pages(
                &job.namespace,
                pace,
                PAGE_SIZE,
                |progress| {
                    if wildcard {
                        return true;
                    }
                    let missing = lock();
                    let Some(last_missing) = missing.last() else {
                        return false;
                    };
                    if progress
                        .last_name
                        .is_some_and(|last| last >= last_missing.as_str())
                    {
                        return false;
                    }
                    let Some(count) = progress.count else {
                        return false;
                    };
                    let left = (count as usize).saturating_sub(progress.seen);
                    left.div_ceil(PAGE_SIZE) < missing.len()
                },
                |page: Vec<RepositoryStats>| {
                    let mut missing = lock();
                    let mut kept = 0;
                    for mut stats in page {
                        if stats.namespace != job.namespace {
                            result
                                .invalid
                                .push(format!("{}/{}", stats.namespace, stats.name));
                            continue;
                        }
                        match listed_repository(&job.namespace, &stats.name) {
                            Ok(_) => {
                                let named = missing.remove(&stats.name);
                                if wildcard || named {
                                    // Listings carry no collaborator_count.
                                    stats.collaborator_count = None;
                                    result.stats.push(stats);
                                    kept += 1;
                                }
                            }
                            Err(reference) => result.invalid.push(reference),
                        }
                    }
                    pace.add_fetched(kept);
                },
            )
            .await;
        result.stop = listed.err();
        result
    }

    /// Reads a namespace's listing page by page, in name order: `on_page`
    /// gets each page's entries as soon as it is read, and `go_on` decides
    /// after each page whether the next is worth a request. `next` links
    /// are resolved against the page's URL and put on our base URL, so a
    /// listing can never send us (or our token) to another host.
    async fn list_namespace_pages<T: ListedEntry>(
        &self,
        namespace: &str,
        pace: &Pace<'_>,
        expected_per_page: usize,
        mut go_on: impl FnMut(&ListingProgress<'_>) -> bool,
        mut on_page: impl FnMut(Vec<T>),
    ) -> Result<(), Stop> {
        let mut url = self.client.url(&format!(
            "v2/namespaces/{namespace}/repositories?page_size={PAGE_SIZE}&ordering=name"
        ))?;
        let mut seen_urls = HashSet::new();
        let mut count = None;
        let mut seen = 0;
        loop {
            if !seen_urls.insert(url.as_str().to_owned()) {
                return Err(Stop::Failed(FetchError::ListingLoop {
                    namespace: namespace.to_owned(),
                }));
            }
            if seen_urls.len() > self.client.options.max_listing_pages {
                return Err(Stop::Failed(FetchError::ListingTooLong {
                    namespace: namespace.to_owned(),
                    pages: self.client.options.max_listing_pages,
                }));
            }
            let call = Call {
                method: Method::GET,
                url: url.clone(),
                body: None,
                max_body: self.client.options.max_listing_body,
                expected: expected_per_page,
            };
            let page: ListingPage<T> = self.request_json(&call, pace).await?;
            if seen_urls.len() == 1 {
                if page.results.is_empty() {
                    return Err(Stop::Failed(FetchError::EmptyNamespace {
                        anonymous: self.auth.is_none(),
                    }));
                }
                count = page.count;
            }
            seen += page.results.len();
            let last_name = page.results.last().map(|entry| entry.name().to_owned());
            if let Some(entry) = page
                .results
                .iter()
                .find(|entry| entry.namespace().is_some_and(|ns| ns != namespace))
            {
                tracing::warn!(namespace, other = ?entry.namespace(), "listing names another namespace");
            }
            on_page(page.results);
            let Some(next) = page.next.filter(|next| !next.is_empty()) else {
                return Ok(());
            };
            let progress = ListingProgress {
                count,
                seen,
                last_name: last_name.as_deref(),
            };
            if !go_on(&progress) {
                return Ok(());
            }
            url = self.client.same_origin(&url, &next)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_are_checked_before_they_reach_a_url() {
        assert_eq!(
            listed_repository("acme", "app"),
            Ok(Repository::new("acme", "app"))
        );
        for bad in ["../../v2/auth/token", "App", "a/b", "", "x?y", "app:tag"] {
            assert!(listed_repository("acme", bad).is_err(), "{bad}");
        }
    }
}
