//! Paging of the identity lists (`/v1/users`, `/v1/service-accounts`, `/v1/namespaces`,
//! `/v1/accounts`), with the conventions of `GET /v1/keys`: `limit` (default 100, 1–1000) and
//! `cursor` (the `next_cursor` of the previous page, `null` at the end), in a stable order.

use axum::extract::Query;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

pub(crate) const DEFAULT_PAGE: usize = 100;
pub(crate) const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The most items in one answer.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A checked page request: its size, and the cursor parsed by `parse`.
pub(crate) struct PageRequest<C> {
    pub(crate) limit: usize,
    pub(crate) after: Option<C>,
}

impl PageQuery {
    pub(crate) fn check<C>(
        query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
        parse: impl FnOnce(&str) -> Option<C>,
    ) -> Result<PageRequest<C>, ApiError> {
        let Query(query) = query.map_err(|e| ApiError::invalid(format!("bad query: {}", e.body_text())))?;
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid(format!("`limit` must be between 1 and {MAX_PAGE}")));
        }
        let after = match query.cursor.as_deref() {
            None => None,
            Some(text) => {
                Some(parse(text).ok_or_else(|| ApiError::invalid("`cursor` is not one this server gave out"))?)
            }
        };
        Ok(PageRequest { limit, after })
    }
}

/// Takes one page from `items` (already after the cursor, in order): the page, and the cursor
/// of its last item when more follow.
pub(crate) fn page<T>(
    items: impl Iterator<Item = T>,
    limit: usize,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let mut page: Vec<T> = items.take(limit + 1).collect();
    if page.len() > limit {
        page.truncate(limit);
        let next = page.last().map(cursor_of);
        (page, next)
    } else {
        (page, None)
    }
}
