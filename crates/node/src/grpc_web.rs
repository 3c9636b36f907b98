//! gRPC-Web beside everything else on one listener: a request with a gRPC-Web content type
//! (`application/grpc-web`, `-text`, `+proto`) is translated by tonic-web; every other request,
//! HTTP/2 gRPC or an HTTP/1.1 call of the JSON API, goes through unchanged. (tonic-web alone
//! answers 400 to every HTTP/1.1 request that is not gRPC-Web.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic_web::GrpcWebService;
use tower::{Layer, Service};

#[derive(Debug, Clone, Copy, Default)]
pub struct WebLayer;

impl<S: Clone> Layer<S> for WebLayer {
    type Service = Web<S>;

    fn layer(&self, inner: S) -> Web<S> {
        Web { web: tonic_web::GrpcWebLayer::new().layer(inner.clone()), plain: inner }
    }
}

#[derive(Debug, Clone)]
pub struct Web<S> {
    web: GrpcWebService<S>,
    plain: S,
}

fn is_grpc_web(request: &http::Request<Body>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc-web"))
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<http::Request<Body>> for Web<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<http::Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        match <GrpcWebService<S> as Service<http::Request<Body>>>::poll_ready(&mut self.web, cx) {
            Poll::Ready(Ok(())) => self.plain.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if is_grpc_web(&request) { Box::pin(self.web.call(request)) } else { Box::pin(self.plain.call(request)) }
    }
}
