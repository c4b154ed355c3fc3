//! Secrets from SSM Parameter Store, read once at cold start: a deployment names a SecureString
//! parameter (`<NAME>_PARAMETER`); a local run may give the value itself (`<NAME>`).

use aws_sdk_ssm::Client;

use crate::config::{optional, ConfigError};
use crate::support::Secret;

/// The secret of an optional part (Telegram, a default webhook): like [`secret`], but the part
/// is switched off, said at cold start, when nothing is configured or its parameter does not
/// exist, so a part that is not set up never takes the function down with it. Fails when the
/// parameter exists but cannot be read.
pub async fn optional_secret(
    client: &Client,
    value_var: &'static str,
    parameter_var: &'static str,
    part: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    match optional(parameter_var) {
        Some(name) => parameter_or_off(client, &name, part)
            .await
            .map_err(|reason| ConfigError::Malformed {
                name: parameter_var,
                reason,
            }),
        None => {
            let value = optional(value_var).map(Secret::new);
            if value.is_none() {
                tracing::info!(
                    part,
                    variable = parameter_var,
                    "{part} is off: nothing is configured"
                );
            }
            Ok(value)
        }
    }
}

/// The SecureString parameter `name` of an optional part: `None` (the part off, logged at
/// error level) when there is no such parameter or it is empty. Any other failure (access
/// denied, a key that cannot decrypt, throttling) is an error: a part that is set up but broken
/// must not go quietly off.
pub async fn parameter_or_off(
    client: &Client,
    name: &str,
    part: &'static str,
) -> Result<Option<Secret>, String> {
    let read = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await;
    match read {
        Ok(output) => {
            let value = output.parameter().and_then(|p| p.value()).unwrap_or_default();
            if value.is_empty() {
                tracing::error!(
                    part,
                    parameter = name,
                    "{part} is off: its SSM parameter is empty; the rest works"
                );
                return Ok(None);
            }
            Ok(Some(Secret::new(value)))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) => {
            tracing::error!(
                part,
                parameter = name,
                "{part} is off: its SSM parameter does not exist; the rest works"
            );
            Ok(None)
        }
        Err(e) => Err(format!(
            "cannot read SSM parameter {name}: {}",
            aws_sdk_ssm::error::DisplayErrorContext(&e)
        )),
    }
}

/// The secret `value_var` names: fetched from the SSM parameter named by `parameter_var` when
/// that is set, else the variable's own value; `None` when neither is set.
///
/// Fails when the parameter cannot be read (naming the variable, never the value).
pub async fn secret(
    client: &Client,
    value_var: &'static str,
    parameter_var: &'static str,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(name) = optional(parameter_var) {
        let output = client
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| ConfigError::Malformed {
                name: parameter_var,
                reason: format!(
                    "cannot read SSM parameter {name}: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(&e)
                ),
            })?;
        let value = output.parameter().and_then(|p| p.value()).unwrap_or_default();
        if value.is_empty() {
            return Err(ConfigError::Malformed {
                name: parameter_var,
                reason: format!("SSM parameter {name} is empty"),
            });
        }
        return Ok(Some(Secret::new(value)));
    }
    Ok(optional(value_var).map(Secret::new))
}

/// The link signing keys from their SSM parameter (`LINK_SIGNING_KEYS_PARAMETER`), or, for local
/// runs, `LINK_SIGNING_KEYS` itself: `id:secret[,id:secret...]`, the first signing.
pub async fn link_signer(
    ssm: &aws_sdk_ssm::Client,
) -> Result<exporter_core::domain::link::LinkSigner, ConfigError> {
    let keys = secret(ssm, "LINK_SIGNING_KEYS", "LINK_SIGNING_KEYS_PARAMETER")
        .await?
        .ok_or(ConfigError::Missing("LINK_SIGNING_KEYS_PARAMETER"))?;
    exporter_core::domain::link::LinkSigner::parse(keys.expose()).map_err(|e| ConfigError::Malformed {
        name: "LINK_SIGNING_KEYS_PARAMETER",
        reason: e.to_string(),
    })
}

/// The link keys as kept in their SSM parameter, read on each call (a rotation shows at once).
pub struct SsmLinkKeys {
    client: Client,
    parameter: String,
}

impl SsmLinkKeys {
    /// The parameter `LINK_SIGNING_KEYS_PARAMETER` names; `None` when the keys come from
    /// `LINK_SIGNING_KEYS` itself (local runs), which cannot change while a process runs.
    pub fn from_env(client: &Client) -> Option<Self> {
        optional("LINK_SIGNING_KEYS_PARAMETER").map(|parameter| Self::new(client, &parameter))
    }

    pub fn new(client: &Client, parameter: &str) -> Self {
        Self {
            client: client.clone(),
            parameter: parameter.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl exporter_core::ports::LinkKeys for SsmLinkKeys {
    async fn current(
        &self,
    ) -> Result<exporter_core::domain::link::LinkSigner, exporter_core::ports::StoreError> {
        let unavailable = |reason: String| exporter_core::ports::StoreError::Unavailable(reason.into());
        let output = self
            .client
            .get_parameter()
            .name(&self.parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                unavailable(format!(
                    "cannot read SSM parameter {}: {}",
                    self.parameter,
                    aws_sdk_ssm::error::DisplayErrorContext(&e)
                ))
            })?;
        let value = output.parameter().and_then(|p| p.value()).unwrap_or_default();
        exporter_core::domain::link::LinkSigner::parse(value)
            .map_err(|e| unavailable(format!("SSM parameter {}: {e}", self.parameter)))
    }
}
