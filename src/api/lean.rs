//! The DynamoDB endpoint's two paths: the full stack of HTTP layers (CORS, gzip both ways) for
//! the requests that need one of them, and a lean path for the rest.
//!
//! Most requests (SDKs, the CLI, load generators) send no `Origin`, no compressed body and
//! accept no compressed answer, yet tower-http's layers wrap every request and answer body in
//! their own types and futures: measured on GetItem at 32 connections, the three cost a quarter
//! of the server's CPU. The lean path answers such a request exactly as the layers would (the
//! same CORS headers, which `allow_origin(Any)` puts on every answer, and the same `x-amz-crc32`)
//! without them. A request with `Origin`, an `OPTIONS` preflight, a `Content-Encoding` or an
//! `Accept-Encoding` other than `identity` takes the full stack.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, header};
use axum::response::Response;
use tower::{Layer, Service, ServiceExt};

/// Sends each request through `full`'s layers or `plain`'s, by [`needs_layers`].
#[derive(Clone)]
pub struct Choose<P, F> {
    /// The layers every answer gets (the checksum).
    pub plain: P,
    /// The layers the requests that need them get.
    pub full: F,
}

impl<S: Clone, P: Layer<S>, F: Layer<S>> Layer<S> for Choose<P, F> {
    type Service = Chosen<P::Service, F::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        Chosen {
            plain: self.plain.layer(inner.clone()),
            full: self.full.layer(inner),
        }
    }
}

/// The service [`Choose`] makes.
#[derive(Clone)]
pub struct Chosen<P, F> {
    plain: P,
    full: F,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<P, F, E> Service<Request<Body>> for Chosen<P, F>
where
    P: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    P::Future: Send,
    F: Service<Request<Body>, Response = Response, Error = E> + Clone + Send + 'static,
    F::Future: Send,
    E: Into<Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Each call drives a clone of the service it picks to readiness itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Answer {
        if needs_layers(req.method(), req.headers()) {
            let full = self.full.clone();
            Box::pin(async move { full.oneshot(req).await.map_err(Into::into) })
        } else {
            let plain = self.plain.clone();
            Box::pin(async move {
                let mut resp = plain.oneshot(req).await?;
                cors_headers(resp.headers_mut());
                Ok(resp)
            })
        }
    }
}

/// Whether a request needs the full stack: CORS (an `Origin`, or a preflight) or gzip (a
/// compressed body, or an answer it may accept compressed).
pub fn needs_layers(method: &Method, headers: &HeaderMap) -> bool {
    let not_identity = |v: &HeaderValue| !v.as_bytes().eq_ignore_ascii_case(b"identity");
    method == Method::OPTIONS
        || headers.contains_key(header::ORIGIN)
        || headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(not_identity)
        || headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .any(not_identity)
}

/// What the CORS layer (`allow_origin(Any)`, `expose_headers(Any)`) adds to an answer to a
/// request without `Origin`.
fn cors_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("*"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_plain_requests_skip_the_layers() {
        let post = Method::POST;
        assert!(!needs_layers(&post, &headers(&[])));
        assert!(!needs_layers(
            &post,
            &headers(&[("accept-encoding", "identity"), ("content-type", "x")])
        ));
        for h in [
            headers(&[("origin", "http://localhost:3000")]),
            headers(&[("content-encoding", "gzip")]),
            headers(&[("accept-encoding", "gzip, deflate")]),
            headers(&[("accept-encoding", "identity"), ("accept-encoding", "br")]),
        ] {
            assert!(needs_layers(&post, &h), "{h:?}");
        }
        assert!(needs_layers(&Method::OPTIONS, &headers(&[])));
    }
}
