//! `/api/v1/media`: upload (multipart, streamed to the media store),
//! metadata, signed URLs and deletion; and `GET /media/{token}`, the signed
//! URLs of the local store.

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crm_core::media::Upload;
use crm_core::ports::media::{TokenRefusal, key_account};
use crm_core::{ByteStream, Error, Media, MediaId, Role, SignedUrl};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    // The upload's body is bounded per kind by the library while it
    // streams, not by the server's default body limit.
    let upload = OpenApiRouter::new().routes(routes!(upload_media)).layer(axum::extract::DefaultBodyLimit::disable());
    OpenApiRouter::new().merge(upload).routes(routes!(get_media, delete_media)).routes(routes!(media_url))
}

/// The route serving the local store's signed URLs (no API key: the token is the credential).
pub(crate) fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download))
}

/// A multipart upload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the form; the handler streams the parts
pub(crate) struct UploadForm {
    /// The file, with its file name and `Content-Type` in the part's headers.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Bytes of multipart framing allowed beside the file.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// Chunks of the file waiting for the store.
const CHUNKS_IN_FLIGHT: usize = 4;

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge { what: "request body", limit: 0 }
    } else {
        Error::validation("file", "the multipart body is malformed")
    }
}

/// Upload a media file (multipart/form-data, one part named `file`). The
/// bytes are streamed to the media store and checked while they pass:
/// their type (magic numbers) must match the part's `Content-Type`, and
/// their size the limit of their kind (images 5 MB, audio and video 16 MB,
/// documents 100 MB by default; 413 beyond).
#[utoipa::path(post, path = "/media", tag = "media",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Media, headers(("location" = String, description = "URL of the media record"))),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn upload_media(State(state): State<AppState>, principal: Principal, request: Request) -> ApiResult<Response> {
    principal.require(Role::Agent)?;
    let media = state.media();
    let largest = media.library.limits().largest();
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > largest + FORM_OVERHEAD) {
        return Err(Error::TooLarge { what: "media", limit: largest }.into());
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_form {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the file as multipart/form-data in a part named `file`",
        ));
    }
    let mut form = <Multipart as axum::extract::FromRequest<AppState>>::from_request(request, &state)
        .await
        .map_err(|_| ApiError::validation("file", "the multipart body is malformed"))?;
    loop {
        let Some(mut field) = form.next_field().await.map_err(multipart_error)? else {
            return Err(ApiError::validation("file", "a part named `file` is required"));
        };
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().unwrap_or("file").to_owned();
        let claimed = field.content_type().map(str::to_owned);
        // The part's chunks go through a small channel to the library, which
        // streams them to the store: never the whole file in memory.
        let (tx, rx) = tokio::sync::mpsc::channel::<crm_core::Result<Bytes>>(CHUNKS_IN_FLIGHT);
        let body: ByteStream =
            Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
        let upload = Upload { filename: &filename, content_type: claimed.as_deref() };
        let feed = async move {
            loop {
                let next = match field.chunk().await {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => break,
                    Err(e) => Err(multipart_error(e)),
                };
                let failed = next.is_err();
                if tx.send(next).await.is_err() || failed {
                    break;
                }
            }
        };
        let (stored, ()) = tokio::join!(media.library.upload(principal.account_id, upload, body), feed);
        let stored = stored?;
        let location = HeaderValue::from_str(&format!("/api/v1/media/{}", stored.id)).ok();
        let mut response = (StatusCode::CREATED, Json(stored)).into_response();
        if let Some(l) = location {
            response.headers_mut().insert(header::LOCATION, l);
        }
        return Ok(response);
    }
}

/// Get a media record: its state (pending, stored, failed, expired,
/// deleted), type, size, SHA-256, origin and linked message.
#[utoipa::path(get, path = "/media/{id}", tag = "media", params(("id" = MediaId, Path)),
    responses((status = 200, body = Media), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn get_media(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<MediaId>,
) -> ApiResult<Json<Media>> {
    Ok(Json(state.media().library.get(principal.account_id, id).await?))
}

/// Delete a media file: the bytes are deleted, the record stays in state
/// `deleted` (deleting again answers the same).
#[utoipa::path(delete, path = "/media/{id}", tag = "media", params(("id" = MediaId, Path)),
    responses((status = 200, body = Media), (status = 404, body = Problem)), security(("api_key" = [])))]
async fn delete_media(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<MediaId>,
) -> ApiResult<Json<Media>> {
    principal.require(Role::Agent)?;
    Ok(Json(state.media().library.delete(principal.account_id, id).await?))
}

/// How long a signed URL lives.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UrlParams {
    /// Seconds, 1 to 604800 (7 days); default from `CRM_MEDIA_URL_TTL_SECS` (1 hour).
    #[param(minimum = 1, maximum = 604800)]
    ttl_secs: Option<u64>,
}

/// A signed URL reading the file without credentials until it expires
/// (409 when the file is not stored).
#[utoipa::path(get, path = "/media/{id}/url", tag = "media", params(("id" = MediaId, Path), UrlParams),
    responses((status = 200, body = SignedUrl), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn media_url(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<MediaId>,
    ApiQuery(p): ApiQuery<UrlParams>,
) -> ApiResult<Json<SignedUrl>> {
    let media = state.media();
    let ttl = p.ttl_secs.map(Duration::from_secs).unwrap_or(media.url_ttl);
    Ok(Json(media.library.signed_url(principal.account_id, id, ttl).await?))
}

/// Read a file through a signed URL of the local store (403 when the token
/// is not genuine, 410 when it has expired, 404 when the file is gone).
#[utoipa::path(get, path = "/media/{token}", tag = "media", params(("token" = String, Path)),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn download(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let media = state.media();
    let Some(signer) = &media.signer else {
        return Err(ApiError::not_found("this server's media store signs its own URLs"));
    };
    // The stores sign with the system's time; checked with the same.
    let now = chrono::Utc::now();
    let key = match signer.verify(&token, now) {
        Ok(key) => key,
        Err(TokenRefusal::Invalid) => return Err(ApiError::forbidden("the link is not valid")),
        Err(TokenRefusal::Expired) => {
            return Err(ApiError::new(StatusCode::GONE, "expired", "Gone", "the link has expired"));
        }
    };
    let account = key_account(&key).ok_or_else(|| ApiError::forbidden("the link is not valid"))?;
    let file = media.library.files().get_stream(account, &key).await?;
    let mut response = Response::new(Body::from_stream(file.body.map(|c| c.map_err(std::io::Error::other))));
    let headers = response.headers_mut();
    let content_type =
        HeaderValue::from_str(&file.info.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.info.size));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
    Ok(response)
}
