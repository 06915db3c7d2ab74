//! Every pagination style Opal uses, behind one page-by-page [`Pager`].
//!
//! Styles: `{next, previous, results}` with `cursor`/`page_size` (most listings), bundles'
//! `{next, total_count, bundles}`, `{requests, cursor}`, Relay `edges`/`pageInfo` with
//! `first`/`after`, `limit` plus `cursor` on resource access lists, and `{data, cursor,
//! total_count}`. A pager stops when no further cursor is given, and fails rather than loops when
//! a cursor repeats or the page cap is reached.

use std::collections::HashSet;
use std::marker::PhantomData;

use futures::Stream;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::call::Call;
use super::client::Client;
use super::error::OpalError;
use super::model::wire;
use super::model::{Bundle, Request};

/// One decoded page: its items and the cursor of the next page, if any.
#[derive(Debug)]
pub struct PageParts<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A response envelope of one pagination style.
pub trait PageEnvelope: DeserializeOwned {
    type Item;

    fn into_parts(self) -> PageParts<Self::Item>;
}

/// `{next, previous, results}`: the standard style, also used by `limit`-based access lists.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct CursorPage<T> {
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub next: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub previous: Option<String>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub results: Vec<T>,
}

impl<T: DeserializeOwned> PageEnvelope for CursorPage<T> {
    type Item = T;

    fn into_parts(self) -> PageParts<T> {
        PageParts {
            items: self.results,
            next_cursor: self.next,
        }
    }
}

/// `{next, previous, total_count, bundles}` of `GET /bundles`.
#[derive(Debug, Deserialize)]
pub struct BundlePage {
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub next: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub previous: Option<String>,
    #[serde(default)]
    pub total_count: Option<i64>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub bundles: Vec<Bundle>,
}

impl PageEnvelope for BundlePage {
    type Item = Bundle;

    fn into_parts(self) -> PageParts<Bundle> {
        PageParts {
            items: self.bundles,
            next_cursor: self.next,
        }
    }
}

/// `{requests, cursor}` of `GET /requests`. The end is an absent or empty cursor, or an empty page
/// (the style has no `next`, so an empty page is the only sure sign of the end).
#[derive(Debug, Deserialize)]
pub struct RequestPage {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub requests: Vec<Request>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub cursor: Option<String>,
}

impl PageEnvelope for RequestPage {
    type Item = Request;

    fn into_parts(self) -> PageParts<Request> {
        let next_cursor = if self.requests.is_empty() {
            None
        } else {
            self.cursor
        };
        PageParts {
            items: self.requests,
            next_cursor,
        }
    }
}

/// Relay connection of `GET /requests/relay`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestConnection {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub edges: Vec<RequestEdge>,
    #[serde(default)]
    pub page_info: Option<PageInfo>,
    #[serde(default)]
    pub total_count: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct RequestEdge {
    pub node: Request,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub has_next_page: bool,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub end_cursor: Option<String>,
    #[serde(default, deserialize_with = "wire::or_default")]
    pub has_previous_page: bool,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub start_cursor: Option<String>,
}

impl PageEnvelope for RequestConnection {
    type Item = Request;

    fn into_parts(self) -> PageParts<Request> {
        let page_info = self.page_info.unwrap_or_default();
        // Without `endCursor`, the last edge's cursor continues the listing.
        let next_cursor = if page_info.has_next_page {
            page_info
                .end_cursor
                .or_else(|| self.edges.last().and_then(|edge| edge.cursor.clone()))
        } else {
            None
        };
        PageParts {
            items: self.edges.into_iter().map(|edge| edge.node).collect(),
            next_cursor,
        }
    }
}

/// `{data, cursor, total_count}` of `GET /resources/{id}/users/{user_id}`; like the requests
/// style, an empty page ends it.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct DataPage<T> {
    #[serde(default, deserialize_with = "wire::or_default")]
    pub data: Vec<T>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub cursor: Option<String>,
    #[serde(default)]
    pub total_count: Option<i64>,
}

impl<T: DeserializeOwned> PageEnvelope for DataPage<T> {
    type Item = T;

    fn into_parts(self) -> PageParts<T> {
        let next_cursor = if self.data.is_empty() {
            None
        } else {
            self.cursor
        };
        PageParts {
            items: self.data,
            next_cursor,
        }
    }
}

/// Query parameter names a listing uses for its page size and cursor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageParams {
    pub size: Option<(&'static str, u32)>,
    pub cursor: &'static str,
}

impl PageParams {
    /// `page_size` and `cursor`.
    pub(crate) fn page_size(size: u32) -> Self {
        Self {
            size: Some(("page_size", size)),
            cursor: "cursor",
        }
    }

    /// `limit` and `cursor`.
    pub(crate) fn limit(size: u32) -> Self {
        Self {
            size: Some(("limit", size)),
            cursor: "cursor",
        }
    }

    /// Only `cursor`.
    pub(crate) fn cursor_only() -> Self {
        Self {
            size: None,
            cursor: "cursor",
        }
    }

    /// Relay `first` (at most 100) and `after`.
    pub(crate) fn relay(size: u32) -> Self {
        Self {
            size: Some(("first", size.clamp(1, 100))),
            cursor: "after",
        }
    }
}

/// Fetches a listing one page at a time. Use [`Pager::next_page`], [`Pager::into_stream`] or
/// [`Pager::collect_all`].
pub struct Pager<E: PageEnvelope> {
    client: Client,
    call: Call,
    params: PageParams,
    next_cursor: Option<String>,
    seen_cursors: HashSet<String>,
    pages: u32,
    finished: bool,
    envelope: PhantomData<fn() -> E>,
}

impl<E: PageEnvelope> Pager<E> {
    pub(crate) fn new(client: &Client, call: Call, params: PageParams) -> Self {
        Self {
            client: client.clone(),
            call,
            params,
            next_cursor: None,
            seen_cursors: HashSet::new(),
            pages: 0,
            finished: false,
            envelope: PhantomData,
        }
    }

    /// The next page, or `None` after the last one. After an error the same page can be asked
    /// for again, except after a pagination loop or the page cap, which end the listing.
    pub async fn next_page(&mut self) -> Result<Option<Vec<E::Item>>, OpalError> {
        if self.finished {
            return Ok(None);
        }
        let max_pages = self.client.max_pages();
        if self.pages >= max_pages {
            self.finished = true;
            return Err(OpalError::TooManyPages {
                operation: self.call.operation,
                max_pages,
            });
        }
        let mut call = self.call.clone();
        if let Some((name, size)) = self.params.size {
            call = call.query(name, size.to_string());
        }
        if let Some(cursor) = &self.next_cursor {
            call = call.query(self.params.cursor, cursor.clone());
        }
        let envelope: E = self.client.fetch(&call).await?;
        self.pages += 1;
        let parts = envelope.into_parts();
        match parts.next_cursor.filter(|cursor| !cursor.is_empty()) {
            Some(cursor) => {
                if !self.seen_cursors.insert(cursor.clone()) {
                    self.finished = true;
                    return Err(OpalError::PaginationLoop {
                        operation: self.call.operation,
                        cursor,
                    });
                }
                self.next_cursor = Some(cursor);
            }
            None => self.finished = true,
        }
        Ok(Some(parts.items))
    }

    /// Number of pages fetched so far.
    pub fn pages_fetched(&self) -> u32 {
        self.pages
    }

    /// Follows the listing to its end and returns every item.
    pub async fn collect_all(mut self) -> Result<Vec<E::Item>, OpalError> {
        let mut items = Vec::new();
        while let Some(page) = self.next_page().await? {
            items.extend(page);
        }
        Ok(items)
    }

    /// The listing as a stream of pages; it ends after the last page or the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<E::Item>, OpalError>> {
        futures::stream::try_unfold(self, |mut pager| async move {
            Ok(pager.next_page().await?.map(|page| (page, pager)))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parts<E: PageEnvelope>(value: serde_json::Value) -> PageParts<E::Item> {
        serde_json::from_value::<E>(value)
            .expect("decodes")
            .into_parts()
    }

    fn request(id: &str) -> serde_json::Value {
        json!({"id": id, "requester_id": "u", "status": "PENDING", "reason": "r"})
    }

    #[test]
    fn standard_page_follows_next() {
        let page = parts::<CursorPage<serde_json::Value>>(
            json!({"next": "c2", "previous": null, "results": [1, 2]}),
        );
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor.as_deref(), Some("c2"));
        let last = parts::<CursorPage<serde_json::Value>>(json!({"results": [3]}));
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn requests_style_ends_on_empty_page_or_missing_cursor() {
        let page = parts::<RequestPage>(json!({"requests": [request("a")], "cursor": "c"}));
        assert_eq!(page.next_cursor.as_deref(), Some("c"));
        let empty = parts::<RequestPage>(json!({"requests": [], "cursor": "c"}));
        assert_eq!(empty.next_cursor, None);
        let no_cursor = parts::<RequestPage>(json!({"requests": [request("a")]}));
        assert_eq!(no_cursor.next_cursor, None);
    }

    #[test]
    fn relay_uses_end_cursor_or_last_edge() {
        let page = parts::<RequestConnection>(json!({
            "edges": [{"node": request("a"), "cursor": "e1"}, {"node": request("b"), "cursor": "e2"}],
            "pageInfo": {"hasNextPage": true, "endCursor": "end", "hasPreviousPage": false, "startCursor": "s"},
            "totalCount": 10
        }));
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor.as_deref(), Some("end"));
        let fallback = parts::<RequestConnection>(json!({
            "edges": [{"node": request("a"), "cursor": "e1"}],
            "pageInfo": {"hasNextPage": true}
        }));
        assert_eq!(fallback.next_cursor.as_deref(), Some("e1"));
        let last = parts::<RequestConnection>(json!({
            "edges": [{"node": request("a"), "cursor": "e1"}],
            "pageInfo": {"hasNextPage": false, "endCursor": "e1"}
        }));
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn bundle_and_data_styles() {
        let bundles = parts::<BundlePage>(json!({
            "next": "n", "total_count": 3, "bundles": [{"bundle_id": "b", "name": "B"}]
        }));
        assert_eq!(bundles.items[0].bundle_id, "b");
        assert_eq!(bundles.next_cursor.as_deref(), Some("n"));
        let data = parts::<DataPage<serde_json::Value>>(
            json!({"data": [1], "cursor": "d", "total_count": 5}),
        );
        assert_eq!(data.next_cursor.as_deref(), Some("d"));
        let done = parts::<DataPage<serde_json::Value>>(json!({"data": [], "cursor": "d"}));
        assert_eq!(done.next_cursor, None);
    }

    #[test]
    fn relay_page_size_is_capped_at_100() {
        assert_eq!(PageParams::relay(500).size, Some(("first", 100)));
        assert_eq!(PageParams::limit(50).size, Some(("limit", 50)));
    }
}
