//! The reader dialects of the platform family: what differs between the Mainflux, Magistrala
//! (>= 0.15, and SuperMQ) and Connhex readers, as one value the reader adapter, the request's
//! rules and the access check consult. Only facts live here (units, separators, limits, which
//! credential schemes a platform takes); the wire itself is the reader adapter's.
//!
//! | | Mainflux | Magistrala >= 0.15, SuperMQ | Connhex |
//! |---|---|---|---|
//! | route | `/channels/{id}/messages` | `/{domainId}/channels/{id}/messages` | `/channels/{id}/messages` |
//! | `time`, `from`, `to` | Unix seconds | Unix nanoseconds | Unix seconds |
//! | subtopic separator | `.` | `/` | `.` |
//! | largest page | 1000 | 1000 | 1500 |
//! | credential schemes | `Bearer`, `Thing` | `Bearer`, `Client` (`Thing` up to v0.15) | `Bearer` |
//! | narrows a page by device | no | yes | no |
//! | message tables (`format`) | no | no | yes |
//! | who a user token belongs to | `GET /users/profile` (users service) | `GET /users/profile` (users service) | `GET /auth/sessions/whoami` (accounts) |

use std::fmt;

/// A reader dialect, chosen by the operator (`READER_DIALECT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Mainflux (0.11 to 0.13) and Magistrala up to 0.14.
    Mainflux,
    /// Magistrala from v0.15 on, and SuperMQ: domains, nanoseconds, `/` subtopics.
    Magistrala,
    /// Connhex, the platform whose export page this service grew from: the default.
    #[default]
    Connhex,
}

/// The unit of the reader's `time`, `from` and `to`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Unix seconds, fractions allowed.
    #[default]
    Seconds,
    /// Unix nanoseconds: integers past 2^53, never to be rounded through an `f64`.
    Nanoseconds,
}

impl TimeUnit {
    /// The unit's name as messages say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seconds => "seconds",
            Self::Nanoseconds => "nanoseconds",
        }
    }
}

/// How the service's reader credential is presented in `Authorization`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CredentialScheme {
    /// `Bearer <token>`: a user token, an API key or a personal access token (`pat_...`).
    #[default]
    Bearer,
    /// `Thing <key>`: a Mainflux device key.
    Thing,
    /// `Client <secret>`: a Magistrala/SuperMQ client (device) secret (`Thing <key>` up to
    /// Magistrala v0.15).
    Client,
}

impl CredentialScheme {
    /// The scheme as `Authorization` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::Thing => "Thing",
            Self::Client => "Client",
        }
    }

    /// Reads a scheme by name (`Bearer`, `Thing`, `Client`, any case).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Bearer, Self::Thing, Self::Client]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl Dialect {
    const ALL: [Self; 3] = [Self::Mainflux, Self::Magistrala, Self::Connhex];

    /// Reads a dialect by its name (`mainflux`, `magistrala`, `connhex`; `supermq` is
    /// Magistrala's). Fails naming the accepted ones.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        if text == "supermq" {
            return Ok(Self::Magistrala);
        }
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not one of mainflux, magistrala (also for SuperMQ), connhex"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mainflux => "mainflux",
            Self::Magistrala => "magistrala",
            Self::Connhex => "connhex",
        }
    }

    /// The unit of the reader's times.
    pub fn time_unit(self) -> TimeUnit {
        match self {
            Self::Magistrala => TimeUnit::Nanoseconds,
            Self::Mainflux | Self::Connhex => TimeUnit::Seconds,
        }
    }

    /// Whether channels live in domains (the route starts with the domain's id).
    pub fn has_domains(self) -> bool {
        self == Self::Magistrala
    }

    /// What separates a subtopic's tokens.
    pub fn subtopic_separator(self) -> char {
        match self {
            Self::Magistrala => '/',
            Self::Mainflux | Self::Connhex => '.',
        }
    }

    /// The most messages one answer may hold.
    pub fn largest_page(self) -> u32 {
        match self {
            Self::Connhex => 1500,
            Self::Mainflux | Self::Magistrala => 1000,
        }
    }

    /// Whether the reader narrows a channel's page to the devices a caller may read (answering
    /// `200` with fewer messages rather than `403`).
    pub fn narrows_by_device(self) -> bool {
        self == Self::Magistrala
    }

    /// Whether the reader keeps messages in tables of their own, chosen with `format`.
    pub fn has_message_tables(self) -> bool {
        self == Self::Connhex
    }

    /// The path of a channel's messages (after the reader's base URL): under the domain where
    /// the dialect has them. Fails saying what the item lacks or has too many of.
    pub fn messages_path(self, domain: Option<&str>, channel: &str) -> Result<String, String> {
        match (domain, self.has_domains()) {
            (Some(domain), true) => Ok(format!("/{domain}/channels/{channel}/messages")),
            (None, false) => Ok(format!("/channels/{channel}/messages")),
            (None, true) => Err(format!(
                "the item names no domain, which the reader (READER_DIALECT={self}) needs: set its params.domainId"
            )),
            (Some(_), false) => Err(format!(
                "the item names a domain, which the reader (READER_DIALECT={self}) does not have"
            )),
        }
    }

    /// The route of the platform's service that answers who a user's token belongs to (the
    /// users service's own profile; Connhex's accounts session, an Ory Kratos `whoami`).
    pub fn profile_path(self) -> &'static str {
        match self {
            Self::Mainflux | Self::Magistrala => "/users/profile",
            Self::Connhex => "/auth/sessions/whoami",
        }
    }

    /// The credential schemes the platform's reader takes.
    pub fn credential_schemes(self) -> &'static [CredentialScheme] {
        match self {
            Self::Mainflux => &[CredentialScheme::Bearer, CredentialScheme::Thing],
            Self::Magistrala => &[
                CredentialScheme::Bearer,
                CredentialScheme::Client,
                CredentialScheme::Thing,
            ],
            Self::Connhex => &[CredentialScheme::Bearer],
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_read_by_name_and_supermq_is_magistralas() {
        assert_eq!(Dialect::parse("Magistrala"), Ok(Dialect::Magistrala));
        assert_eq!(Dialect::parse("supermq"), Ok(Dialect::Magistrala));
        assert_eq!(Dialect::parse(" mainflux "), Ok(Dialect::Mainflux));
        let refused = Dialect::parse("thingsboard").expect_err("not a dialect");
        assert!(refused.contains("mainflux, magistrala"), "{refused}");
        assert_eq!(Dialect::default(), Dialect::Connhex);
    }

    #[test]
    fn only_magistrala_speaks_nanoseconds_domains_and_slashes() {
        for dialect in Dialect::ALL {
            let magistrala = dialect == Dialect::Magistrala;
            assert_eq!(dialect.time_unit() == TimeUnit::Nanoseconds, magistrala);
            assert_eq!(dialect.has_domains(), magistrala);
            assert_eq!(dialect.subtopic_separator() == '/', magistrala);
            assert!(dialect.credential_schemes().contains(&CredentialScheme::Bearer));
        }
        assert_eq!(Dialect::Connhex.largest_page(), 1500);
        assert_eq!(
            Dialect::Magistrala.messages_path(Some("d"), "c").as_deref(),
            Ok("/d/channels/c/messages")
        );
        assert_eq!(
            Dialect::Mainflux.messages_path(None, "c").as_deref(),
            Ok("/channels/c/messages")
        );
        assert!(Dialect::Magistrala.messages_path(None, "c").is_err());
        assert!(Dialect::Connhex.messages_path(Some("d"), "c").is_err());
        assert_eq!(CredentialScheme::parse("thing"), Some(CredentialScheme::Thing));
        assert_eq!(CredentialScheme::parse("Basic"), None);
    }
}
