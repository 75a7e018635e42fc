//! The gateway's errors and their gRPC codes.
use ism_platform::paging::FieldError;
use ism_platform::status;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("channel not found")]
    ChannelNotFound,
    /// The provider refused what we asked while connecting a channel.
    #[error("{0}")]
    Provider(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Unexpected(e.into())
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(field) => status::invalid(&field),
            Error::ChannelNotFound => Status::not_found("channel not found"),
            Error::Provider(reason) => Status::failed_precondition(reason),
            Error::Unexpected(e) => status::unexpected(&e),
        }
    }
}
