//! Keyset pagination behind every paginated endpoint. Cursors are opaque base64url strings that
//! carry a direction and the sort key of the item they point at, so a page boundary never moves
//! when objects are added or removed while a client walks the list: nothing is skipped or repeated.

use std::collections::BTreeMap;
use std::ops::Bound;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::config::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::http::ApiError;

/// A sort key that can travel inside a cursor.
pub(crate) trait CursorKey: Ord + Clone {
    fn encode(&self) -> String;
    fn decode(text: &str) -> Option<Self>;
}

impl CursorKey for String {
    fn encode(&self) -> String {
        self.clone()
    }

    fn decode(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

/// Separates the parts of a composite key; ids and access levels never contain it.
const KEY_SEPARATOR: char = '\u{1f}';

impl CursorKey for (String, String) {
    fn encode(&self) -> String {
        format!("{}{KEY_SEPARATOR}{}", self.0, self.1)
    }

    fn decode(text: &str) -> Option<Self> {
        let (first, second) = text.split_once(KEY_SEPARATOR)?;
        Some((first.to_owned(), second.to_owned()))
    }
}

impl CursorKey for u64 {
    fn encode(&self) -> String {
        self.to_string()
    }

    fn decode(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// Where a page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Position<K> {
    Start,
    After(K),
    Before(K),
}

const AFTER: char = 'a';
const BEFORE: char = 'b';

fn encode_text(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

fn decode_text(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::bad_request(format!("invalid cursor {cursor:?}")))
}

impl<K: CursorKey> Position<K> {
    /// Reads a `cursor` query parameter (absent or empty = first page).
    pub(crate) fn from_cursor(cursor: Option<&str>) -> Result<Self, ApiError> {
        let Some(cursor) = cursor.filter(|cursor| !cursor.is_empty()) else {
            return Ok(Self::Start);
        };
        let text = decode_text(cursor)?;
        let mut chars = text.chars();
        let direction = chars.next();
        let key = K::decode(chars.as_str())
            .ok_or_else(|| ApiError::bad_request(format!("invalid cursor {cursor:?}")))?;
        match direction {
            Some(AFTER) => Ok(Self::After(key)),
            Some(BEFORE) => Ok(Self::Before(key)),
            _ => Err(ApiError::bad_request(format!("invalid cursor {cursor:?}"))),
        }
    }

    fn cursor(direction: char, key: &K) -> String {
        encode_text(&format!("{direction}{}", key.encode()))
    }
}

/// The cursor of a single item, as Relay edges carry it (no direction: `after`/`before` say it).
pub(crate) fn edge_cursor<K: CursorKey>(key: &K) -> String {
    encode_text(&key.encode())
}

/// Reads a Relay `after`/`before` cursor.
pub(crate) fn decode_edge_cursor<K: CursorKey>(cursor: &str) -> Result<K, ApiError> {
    K::decode(&decode_text(cursor)?)
        .ok_or_else(|| ApiError::bad_request(format!("invalid cursor {cursor:?}")))
}

/// One page of results and the cursors around it.
#[derive(Debug)]
pub(crate) struct Page<K, T> {
    pub items: Vec<(K, T)>,
    /// Cursor of the following page, when there is one.
    pub next: Option<String>,
    /// Cursor of the preceding page, when there is one.
    pub previous: Option<String>,
}

impl<K, T> Page<K, T> {
    pub(crate) fn into_items(self) -> (Vec<T>, Option<String>, Option<String>) {
        let items = self.items.into_iter().map(|(_, item)| item).collect();
        (items, self.next, self.previous)
    }
}

/// Page size from a request: `requested` (default 200), clamped to 1000, then to the
/// simulator's page cap. Zero or negative sizes are a client error.
pub(crate) fn page_size(requested: Option<i64>, cap: Option<usize>) -> Result<usize, ApiError> {
    let size = match requested {
        None => DEFAULT_PAGE_SIZE,
        Some(size) if size < 1 => {
            return Err(ApiError::bad_request(format!(
                "page size must be at least 1, got {size}"
            )));
        }
        Some(size) => usize::try_from(size)
            .unwrap_or(MAX_PAGE_SIZE)
            .min(MAX_PAGE_SIZE),
    };
    Ok(cap.map_or(size, |cap| size.min(cap.max(1))))
}

/// Pages through `map` in key order, keeping the entries `select` turns into an item.
pub(crate) fn paginate<K, V, T>(
    map: &BTreeMap<K, V>,
    position: &Position<K>,
    size: usize,
    mut select: impl FnMut(&K, &V) -> Option<T>,
) -> Page<K, T>
where
    K: CursorKey,
{
    let mut items: Vec<(K, T)> = Vec::new();
    match position {
        Position::Start | Position::After(_) => {
            let lower = match position {
                Position::After(key) => Bound::Excluded(key),
                _ => Bound::Unbounded,
            };
            let mut more = false;
            for (key, value) in map.range::<K, _>((lower, Bound::Unbounded)) {
                if let Some(item) = select(key, value) {
                    if items.len() == size {
                        more = true;
                        break;
                    }
                    items.push((key.clone(), item));
                }
            }
            let next = if more {
                items
                    .last()
                    .map(|(key, _)| Position::<K>::cursor(AFTER, key))
            } else {
                None
            };
            let previous = match (position, items.first()) {
                (Position::After(cursor_key), Some((first, _))) => map
                    .range::<K, _>((Bound::Unbounded, Bound::Included(cursor_key)))
                    .rev()
                    .any(|(key, value)| select(key, value).is_some())
                    .then(|| Position::<K>::cursor(BEFORE, first)),
                _ => None,
            };
            Page {
                items,
                next,
                previous,
            }
        }
        Position::Before(cursor_key) => {
            let mut more = false;
            for (key, value) in map
                .range::<K, _>((Bound::Unbounded, Bound::Excluded(cursor_key)))
                .rev()
            {
                if let Some(item) = select(key, value) {
                    if items.len() == size {
                        more = true;
                        break;
                    }
                    items.push((key.clone(), item));
                }
            }
            items.reverse();
            let previous = if more {
                items
                    .first()
                    .map(|(key, _)| Position::<K>::cursor(BEFORE, key))
            } else {
                None
            };
            let next = items.last().and_then(|(last, _)| {
                map.range::<K, _>((Bound::Excluded(last), Bound::Unbounded))
                    .any(|(key, value)| select(key, value).is_some())
                    .then(|| Position::<K>::cursor(AFTER, last))
            });
            Page {
                items,
                next,
                previous,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(count: u64) -> BTreeMap<u64, u64> {
        (0..count).map(|n| (n, n)).collect()
    }

    fn walk_forward(map: &BTreeMap<u64, u64>, size: usize) -> Vec<u64> {
        let mut seen = Vec::new();
        let mut position = Position::Start;
        for _ in 0..1000 {
            let page = paginate(map, &position, size, |_, value| {
                (value % 3 != 0).then_some(*value)
            });
            let (items, next, _) = page.into_items();
            seen.extend(items);
            match next {
                Some(cursor) => {
                    position = Position::from_cursor(Some(&cursor)).expect("own cursor decodes")
                }
                None => return seen,
            }
        }
        panic!("pagination did not end");
    }

    #[test]
    fn forward_walk_visits_every_selected_item_once() {
        let map = numbers(50);
        let expected: Vec<u64> = (0..50).filter(|n| n % 3 != 0).collect();
        for size in [1, 2, 7, 33, 200] {
            assert_eq!(walk_forward(&map, size), expected, "page size {size}");
        }
    }

    #[test]
    fn previous_cursor_returns_the_preceding_page() {
        let map = numbers(10);
        let first = paginate(&map, &Position::Start, 4, |_, v| Some(*v));
        assert!(first.previous.is_none());
        let next = first.next.expect("more pages");
        let second = paginate(
            &map,
            &Position::from_cursor(Some(&next)).expect("cursor"),
            4,
            |_, v| Some(*v),
        );
        let (items, _, previous) = second.into_items();
        assert_eq!(items, vec![4, 5, 6, 7]);
        let back = paginate(
            &map,
            &Position::from_cursor(Some(&previous.expect("previous"))).expect("cursor"),
            4,
            |_, v| Some(*v),
        );
        let (items, next, previous) = back.into_items();
        assert_eq!(items, vec![0, 1, 2, 3]);
        assert!(previous.is_none());
        assert!(next.is_some());
    }

    #[test]
    fn page_size_is_defaulted_clamped_and_capped() {
        assert_eq!(page_size(None, None).expect("valid"), 200);
        assert_eq!(page_size(Some(5000), None).expect("valid"), 1000);
        assert_eq!(page_size(Some(50), Some(7)).expect("valid"), 7);
        assert!(page_size(Some(0), None).is_err());
    }

    #[test]
    fn malformed_cursor_is_rejected() {
        assert!(Position::<String>::from_cursor(Some("%%%")).is_err());
        let wrong_direction = encode_text("zkey");
        assert!(Position::<String>::from_cursor(Some(&wrong_direction)).is_err());
    }
}
