//! The API's JSON body extractor.

use axum::Json;
use axum::http::StatusCode;

use super::ApiError;

/// JSON body extractor whose rejection is an [`ApiError`] naming what is wrong.
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BodyTooLarge",
                "the request body is larger than the gateway accepts (2 MiB; import big fleets in batches)",
            )),
            Err(rejection) => Err(ApiError::bad_request("InvalidBody", rejection.body_text())),
        }
    }
}
