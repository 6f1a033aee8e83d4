//! The dead-letter pages: the listing with the CLI's filters, one dead
//! letter, and the forms that replay, delete and purge. Each form asks first
//! with the count it will touch, then does it when posted with
//! `confirmed=yes`.

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};

use super::{bad_request, html, pages, replays, store, ConsoleState, Fields, PageError, Signed};
use crate::deadletter::filter::Cursor;
use crate::deadletter::{replay, Filter, FilterSpec};

/// Dead letters per page.
const PAGE_SIZE: u32 = 50;

/// The listing's query: the CLI's filters and the page cursor.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    filter: FilterSpec,
    cursor: Option<String>,
}

pub fn parse_filter(spec: &FilterSpec) -> Result<Filter, PageError> {
    spec.parse(SystemTime::now())
        .map_err(|e| bad_request(e.to_string()))
}

pub async fn dead_letters(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let spec = q.filter.without_blanks();
    let filter = parse_filter(&spec)?;
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| bad_request(e.to_string()))?;
    let store = store(&state)?;
    let page = store.list(&filter, cursor, PAGE_SIZE).await?;
    let matching = store.count_matching(&filter).await?;
    let stats = store.stats(&filter).await?;
    Ok(html(
        StatusCode::OK,
        pages::dead_letters(
            &signed,
            &spec,
            &page,
            matching,
            &stats,
            &state.replays.recent(),
        ),
    ))
}

pub async fn dead_letter(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id: i64 = id
        .parse()
        .map_err(|_| bad_request(format!("bad dead-letter id {id:?}")))?;
    match store(&state)?.get(id).await? {
        Some(dl) => Ok(html(StatusCode::OK, pages::dead_letter(&signed, &dl))),
        None => Err(PageError(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}"),
        )),
    }
}

/// Which rows a replay or delete form means: the ticked ids, or every
/// match of the filter it carries (`scope=matching`).
fn chosen(fields: &Fields) -> Result<(Filter, String), PageError> {
    if fields.get("scope") == Some("matching") {
        let spec = fields.filter_spec();
        let filter = parse_filter(&spec)?;
        return Ok((filter, format!("every match of {}", pages::describe(&spec))));
    }
    let ids = fields
        .all("id")
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| bad_request(format!("bad dead-letter id {s:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(bad_request("select at least one dead letter"));
    }
    let what = match ids.as_slice() {
        [one] => format!("dead letter {one}"),
        many => format!("{} selected dead letters", many.len()),
    };
    Ok((
        Filter {
            ids,
            ..Filter::default()
        },
        what,
    ))
}

/// Replay: the first post shows the count and asks; the confirmed one
/// starts the job and shows its progress.
pub async fn replay_form(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Extension(fields): Extension<Fields>,
) -> Result<Response, PageError> {
    let (filter, what) = chosen(&fields)?;
    let store = store(&state)?;
    if fields.get("confirmed") != Some("yes") {
        let plan = replay::plan(store, &filter, false).await?;
        return Ok(html(
            StatusCode::OK,
            pages::confirm_replay(&signed, &fields, &what, &plan),
        ));
    }
    let job = state
        .replays
        .start(store.clone(), state.amqp.clone(), filter, what);
    Ok(Redirect::to(&format!("/ui/replays/{job}")).into_response())
}

pub async fn delete_form(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Extension(fields): Extension<Fields>,
) -> Result<Response, PageError> {
    let (filter, what) = chosen(&fields)?;
    delete_matching(
        &state,
        &signed,
        &fields,
        &filter,
        Confirm {
            action: "/ui/dead-letters/delete",
            question: format!("Delete {what}?"),
            verb: "Delete",
        },
        |n| format!("Deleted {n} dead letters."),
    )
    .await
}

/// Purge older than N days, as `dlq purge --older-than Nd`.
pub async fn purge_form(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Extension(fields): Extension<Fields>,
) -> Result<Response, PageError> {
    let days = fields
        .get("older_than_days")
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|d| *d >= 1)
        .ok_or_else(|| bad_request("older than: give a whole number of days, at least 1"))?;
    let filter = parse_filter(&FilterSpec {
        until: Some(format!("{days}d")),
        ..FilterSpec::default()
    })?;
    delete_matching(
        &state,
        &signed,
        &fields,
        &filter,
        Confirm {
            action: "/ui/dead-letters/purge",
            question: format!("Purge every dead letter older than {days} days?"),
            verb: "Purge",
        },
        |n| format!("Purged {n} dead letters older than {days} days."),
    )
    .await
}

/// The confirmation page a deleting form shows first.
struct Confirm {
    /// Where the confirmed form posts again.
    action: &'static str,
    question: String,
    /// The confirming button's label.
    verb: &'static str,
}

/// Delete and purge alike: the first post shows how many match and asks;
/// the confirmed one deletes them and says how many went.
async fn delete_matching(
    state: &ConsoleState,
    signed: &Signed,
    fields: &Fields,
    filter: &Filter,
    confirm: Confirm,
    done: impl FnOnce(u64) -> String,
) -> Result<Response, PageError> {
    let store = store(state)?;
    if fields.get("confirmed") != Some("yes") {
        let n = store.count_matching(filter).await?;
        return Ok(html(
            StatusCode::OK,
            pages::confirm(
                signed,
                fields,
                confirm.action,
                &confirm.question,
                n,
                confirm.verb,
            ),
        ));
    }
    let n = store.purge(filter, |_| {}).await?;
    let done = done(n);
    tracing::info!(deleted = n, "ops console: {done}");
    Ok(html(StatusCode::OK, pages::done(signed, &done)))
}

pub async fn replay_page(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<u64>,
) -> Result<Response, PageError> {
    let job = state
        .replays
        .get(id)
        .ok_or_else(|| PageError(StatusCode::NOT_FOUND, format!("no replay {id}")))?;
    Ok(html(StatusCode::OK, pages::replay_job(&signed, &job)))
}

pub async fn replay_json(
    State(state): State<ConsoleState>,
    Path(id): Path<u64>,
) -> Result<Json<replays::Job>, StatusCode> {
    state.replays.get(id).map(Json).ok_or(StatusCode::NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_ignores_unknown_parameters_and_blank_filters() {
        let uri: axum::http::Uri = "/ui/dead-letters?reason=&channel=room&utm_source=x"
            .parse()
            .expect("a URI");
        let Query(q) = Query::<ListQuery>::try_from_uri(&uri).expect("a listing query");
        let spec = q.filter.without_blanks();
        assert_eq!(pages::describe(&spec), "channel=room");
        assert_eq!(q.cursor, None);
    }
}
