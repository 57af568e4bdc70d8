//! Listing a repository's tags (`GET /v2/<name>/tags/list?n=…&last=…`), one bounded page.
//!
//! The fleet cache (see `crate::fleet`) names each of its artifacts with a tag that sorts newest
//! first, so it only ever needs the first page after a prefix: one request, at most `n` names,
//! the body bounded by the manifest limit. Pages after the first (the `Link` header) are not
//! followed on purpose: a reader wants the newest few artifacts, never the whole history.

use reqwest::header::ACCEPT;
use reqwest::{Method, Url};

use super::client::{BlockingRegistry, pull_scope};
use super::{Reference, Registry, RegistryError, Result};

/// The longest tag the distribution spec allows; longer names in an answer are refused.
const MAX_TAG_LEN: usize = 128;

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Registry {
    /// Up to `n` tags of the repository `reference` names that sort after `last`, in the
    /// registry's (lexical) order. A repository that does not exist has no tags.
    pub async fn list_tags(
        &self,
        reference: &Reference,
        last: &str,
        n: usize,
    ) -> Result<Vec<String>> {
        let host = self.host(&reference.registry, reference.api_host()).await?;
        let repo = reference.repository.as_str();
        let mut url = host.url(&format!("v2/{repo}/tags/list"));
        url.query_pairs_mut()
            .append_pair("n", &n.to_string())
            .append_pair("last", last);
        self.retry(|| self.list_tags_once(&host, repo, &url, n))
            .await
            .map_err(|e| e.refine(&host.name, repo, "pull"))
    }

    async fn list_tags_once(
        &self,
        host: &super::client::Host,
        repo: &str,
        url: &Url,
        n: usize,
    ) -> Result<Vec<String>> {
        let t = self.transport();
        let scopes = [pull_scope(repo)];
        let json = |rb: reqwest::RequestBuilder| -> Result<reqwest::RequestBuilder> {
            Ok(rb.header(ACCEPT, "application/json"))
        };
        let resp = self
            .send(host, &scopes, Method::GET, url, &json, None)
            .await?;
        if resp.status().as_u16() == 404 {
            let e = t.api_error(resp, &Method::GET).await;
            return if e.has_code("NAME_UNKNOWN") {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        let resp = t.expect_status(resp, &Method::GET, &[200]).await?;
        let body = t.read_body(resp, t.limits.manifest, "tag list").await?;
        parse_tag_list(&body, n)
    }
}

/// The names of a tag list answer: valid tags only, at most `n` (a registry that ignores `n`
/// gets its extra names dropped, not trusted).
fn parse_tag_list(body: &[u8], n: usize) -> Result<Vec<String>> {
    let list: TagList = serde_json::from_slice(body)
        .map_err(|e| RegistryError::Protocol(format!("the tag list is not valid JSON: {e}")))?;
    Ok(list
        .tags
        .unwrap_or_default()
        .into_iter()
        .filter(|t| {
            !t.is_empty()
                && t.len() <= MAX_TAG_LEN
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        })
        .take(n)
        .collect())
}

impl BlockingRegistry {
    /// [`Registry::list_tags`], blocking.
    pub fn list_tags(&self, reference: &Reference, last: &str, n: usize) -> Result<Vec<String>> {
        self.block_on(self.registry().list_tags(reference, last, n))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_tag_list;

    #[test]
    fn tag_lists_are_bounded_and_checked() {
        let body = br#"{"name":"x","tags":["a","b c","","c","d"]}"#;
        assert_eq!(parse_tag_list(body, 2).unwrap(), ["a", "c"]);
        assert_eq!(
            parse_tag_list(br#"{"name":"x","tags":null}"#, 5).unwrap(),
            Vec::<String>::new()
        );
        assert!(parse_tag_list(b"<html>", 5).is_err());
    }
}
