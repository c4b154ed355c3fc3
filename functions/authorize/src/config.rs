//! The authorizer's configuration: every variable it reads, read once at cold start and failing
//! there naming the variable.

use exporter_adapters::config::{list_or, optional, reader_dialect, required, ConfigError};

use crate::{oidc, platform, Authorizer, PLATFORM_DEFAULT_PERMISSIONS};

impl Authorizer {
    /// Reads `CALLER_AUTH` and what that way needs: `OIDC_ISSUER` and `OIDC_AUDIENCE`, or
    /// `PLATFORM_USERS_URL`, `READER_DIALECT` and `PLATFORM_PERMISSIONS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        match optional("CALLER_AUTH").as_deref().unwrap_or("oidc") {
            "oidc" => {
                let audiences = list_or("OIDC_AUDIENCE", Vec::new());
                if audiences.is_empty() {
                    return Err(ConfigError::Missing("OIDC_AUDIENCE"));
                }
                Ok(Self::Oidc(oidc::Issuer::new(
                    &required("OIDC_ISSUER")?,
                    audiences,
                )?))
            }
            "platform" => {
                let permissions = list_or(
                    "PLATFORM_PERMISSIONS",
                    PLATFORM_DEFAULT_PERMISSIONS.map(str::to_owned).to_vec(),
                );
                Ok(Self::Platform(platform::Users::new(
                    &required("PLATFORM_USERS_URL")?,
                    reader_dialect()?,
                    permissions,
                )?))
            }
            other => Err(ConfigError::Malformed {
                name: "CALLER_AUTH",
                reason: format!("{other:?} is neither \"oidc\" nor \"platform\""),
            }),
        }
    }
}
