//! Configuration: built-in defaults < TOML file < `MDOR_*` environment variables (`__` for
//! nesting) < command-line flags, read into a raw struct and then validated once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The commented example printed by `mdor config example`.
pub const EXAMPLE: &str = include_str!("../../../config/mdor.example.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub database: RawDatabase,
    pub server: RawServer,
    pub log: RawLog,
    pub submissions: RawSubmissions,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub surveillance: RawSurveillance,
    #[serde(default)]
    pub accounts: RawAccounts,
    #[serde(default)]
    pub keys: RawKeys,
    #[serde(default)]
    pub webauthn: RawWebauthn,
    /// OpenID Connect sign-in; off when the section is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<RawOidc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebauthn {
    /// The registry's domain name, which passkeys and security keys are bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relying_party_id: Option<String>,
    /// The origin browsers reach the registry at (`https://` and the domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// `[oidc]`: sign-in through a national identity provider (such as NHS CIS2).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// The provider's issuer URL; its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// How this registry authenticates at the token endpoint: `client_secret` (the default)
    /// or `private_key_jwt` (a JWT signed with `client_private_key_file`; NHS CIS2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<String>,
    /// With `client_secret` only. Meant for `MDOR_OIDC__CLIENT_SECRET` from a secret store,
    /// never for a file under version control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// With `private_key_jwt` only: the PEM file of the registry's RSA private key (PKCS#1
    /// or unencrypted PKCS#8), whose public key is registered at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_private_key_file: Option<String>,
    /// The `kid` the provider knows that public key by, when it asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_id: Option<String>,
    /// `RS256` (the default), `RS384` or `RS512` (CIS2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion_alg: Option<String>,
    /// This registry's callback as registered at the provider:
    /// `https://HOST/api/v1/session/oidc/callback`.
    pub redirect_url: String,
    /// Scopes besides `openid`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The assurance levels (the ID token's `acr`) a sign-in may have.
    pub accepted_acr_values: Vec<String>,
    /// Those of the accepted levels reached only with a phishing-resistant authenticator.
    #[serde(default)]
    pub phishing_resistant_acr_values: Vec<String>,
}

impl std::fmt::Debug for RawOidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawOidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_auth", &self.client_auth)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("client_private_key_file", &self.client_private_key_file)
            .field("client_key_id", &self.client_key_id)
            .field("client_assertion_alg", &self.client_assertion_alg)
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("accepted_acr_values", &self.accepted_acr_values)
            .field(
                "phishing_resistant_acr_values",
                &self.phishing_resistant_acr_values,
            )
            .finish()
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// File holding the key-encryption key that wraps the identifier data keys
    /// (`mdor keys keygen` writes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek_file: Option<String>,
    /// The key-encryption key itself, 64 hex digits: meant for `MDOR_KEYS__KEK` from a
    /// secret store, never for a file under version control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek: Option<String>,
}

impl std::fmt::Debug for RawKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawKeys")
            .field("kek_file", &self.kek_file)
            .field("kek", &self.kek.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Where the key-encryption key comes from.
#[derive(Clone)]
pub enum KekSource {
    File(PathBuf),
    Value(SecretString),
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::File(path) => write!(f, "File({})", path.display()),
            KekSource::Value(_) => f.write_str("Value(***)"),
        }
    }
}

impl KekSource {
    /// Reads and parses the key; the message names the setting, never the key.
    pub fn load(&self) -> anyhow::Result<mdor_store::KeyEncryptionKey> {
        match self {
            KekSource::File(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "reading the key-encryption key file {} (keys.kek_file)",
                        path.display()
                    )
                })?;
                mdor_store::KeyEncryptionKey::parse(&text)
                    .with_context(|| format!("keys.kek_file {}", path.display()))
            }
            KekSource::Value(value) => mdor_store::KeyEncryptionKey::parse(value.expose_secret())
                .context("keys.kek (MDOR_KEYS__KEK)"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSurveillance {
    /// Keep every class's survivorship cohort in memory, refreshed ahead of use.
    #[serde(default = "yes")]
    pub keep_cohorts_warm: bool,
    /// Run surveillance whenever a bulk submission has stored or corrected records.
    #[serde(default = "yes")]
    pub after_ingest: bool,
}

impl Default for RawSurveillance {
    fn default() -> Self {
        RawSurveillance {
            keep_cohorts_warm: true,
            after_ingest: true,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubmissions {
    pub data_dir: String,
    pub max_upload_bytes: u64,
    pub chunk_records: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    /// Requests arrive through a reverse proxy whose `X-Forwarded-For` (client address, for
    /// per-address limits) and `X-Forwarded-Proto` (HTTPS, for HSTS) are to be believed.
    #[serde(default)]
    pub trusted_proxy: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// File holding the checkpoint signing key (`mdor audit keygen` writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccounts {
    /// File holding the key that seals accounts' TOTP secrets (`mdor account keygen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            database: RawDatabase {
                url: "sqlite://mdor.db".into(),
                max_connections: 8,
            },
            server: RawServer {
                listen: "127.0.0.1:8080".into(),
                trusted_proxy: false,
            },
            log: RawLog {
                format: "pretty".into(),
            },
            submissions: RawSubmissions {
                data_dir: "mdor-data/submissions".into(),
                max_upload_bytes: mdor_service::DEFAULT_MAX_UPLOAD_BYTES,
                chunk_records: mdor_service::DEFAULT_CHUNK_RECORDS,
            },
            audit: RawAudit::default(),
            surveillance: RawSurveillance::default(),
            accounts: RawAccounts::default(),
            keys: RawKeys::default(),
            webauthn: RawWebauthn::default(),
            oidc: None,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Validated configuration.
pub struct Config {
    pub database_url: SecretString,
    pub max_connections: u32,
    pub listen: SocketAddr,
    /// Believe the reverse proxy's `X-Forwarded-For` and `X-Forwarded-Proto`.
    pub trusted_proxy: bool,
    pub log_format: LogFormat,
    pub submissions_dir: std::path::PathBuf,
    pub max_upload_bytes: u64,
    pub chunk_records: usize,
    /// Where the audit checkpoint signing key is; never in the database.
    pub audit_signing_key: Option<PathBuf>,
    /// Whether `mdor serve` keeps survivorship cohorts warm (memory for speed).
    pub keep_cohorts_warm: bool,
    /// Whether `mdor serve` runs surveillance after each bulk submission that stored records.
    pub surveil_after_ingest: bool,
    /// Where the key sealing TOTP secrets is; read when accounts are created or used.
    pub accounts_key_file: Option<PathBuf>,
    /// The key-encryption key of patient identifiers; without it they cannot be read or
    /// written (everything else works).
    pub kek: Option<KekSource>,
    /// Where passkeys and security keys are bound: the configured domain, or
    /// `http://localhost:PORT` when none is configured.
    pub webauthn: mdor_service::webauthn::WebauthnSettings,
    /// Whether `webauthn` came from the configuration rather than the localhost default.
    pub webauthn_configured: bool,
    /// OpenID Connect sign-in, when configured; its client secret redacts itself.
    pub oidc: Option<mdor_service::OidcSettings>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &redact_url(self.database_url.expose_secret()),
            )
            .field("max_connections", &self.max_connections)
            .field("listen", &self.listen)
            .field("trusted_proxy", &self.trusted_proxy)
            .field("log_format", &self.log_format)
            .field("submissions_dir", &self.submissions_dir)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("chunk_records", &self.chunk_records)
            .field("audit_signing_key", &self.audit_signing_key)
            .field("keep_cohorts_warm", &self.keep_cohorts_warm)
            .field("surveil_after_ingest", &self.surveil_after_ingest)
            .field("accounts_key_file", &self.accounts_key_file)
            .field("kek", &self.kek)
            .field("webauthn", &self.webauthn)
            .field("oidc", &self.oidc)
            .finish()
    }
}

/// Overrides given on the command line.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl Config {
    /// Layers the sources and validates the result.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("mdor.toml")),
        }
        // Every setting is nested (`MDOR_DATABASE__URL`), so only variables with `__` are
        // configuration; others such as `MDOR_TEST_POSTGRES_URL` belong to the test suite.
        // A misspelt nested variable is still refused by `deny_unknown_fields`.
        figment = figment.merge(
            Env::prefixed("MDOR_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        if let Some(url) = &flags.database_url {
            figment = figment.merge(Serialized::default("database.url", url));
        }
        if let Some(listen) = &flags.listen {
            figment = figment.merge(Serialized::default("server.listen", listen));
        }
        let raw: RawConfig = figment.extract().context("reading configuration")?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> anyhow::Result<Config> {
        let url = raw.database.url.trim().to_string();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!(
                "database.url must start with sqlite: or postgres:// (got {})",
                redact_url(&url)
            );
        }
        if !(1..=512).contains(&raw.database.max_connections) {
            bail!("database.max_connections must be 1 to 512");
        }
        let listen: SocketAddr = raw.server.listen.parse().with_context(|| {
            format!(
                "server.listen '{}' is not an address:port",
                raw.server.listen
            )
        })?;
        let log_format = match raw.log.format.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => bail!("log.format must be pretty or json (got {other})"),
        };
        let submissions = raw.submissions;
        if submissions.data_dir.trim().is_empty() {
            bail!("submissions.data_dir must name a directory");
        }
        if submissions.max_upload_bytes == 0 {
            bail!("submissions.max_upload_bytes must be at least 1");
        }
        if !(1..=100_000).contains(&submissions.chunk_records) {
            bail!("submissions.chunk_records must be 1 to 100000");
        }
        let audit_signing_key = match raw.audit.signing_key.as_deref().map(str::trim) {
            Some("") => bail!("audit.signing_key must name a file when given"),
            Some(path) => Some(PathBuf::from(path)),
            None => None,
        };
        let accounts_key_file = match raw.accounts.key_file.as_deref().map(str::trim) {
            Some("") => bail!("accounts.key_file must name a file when given"),
            Some(path) => Some(PathBuf::from(path)),
            None => None,
        };
        let kek = match (
            raw.keys.kek_file.as_deref().map(str::trim),
            raw.keys.kek.as_deref().map(str::trim),
        ) {
            (Some(_), Some(_)) => {
                bail!("keys.kek_file and keys.kek are both set: give the key one way only")
            }
            (Some(""), None) => bail!("keys.kek_file must name a file when given"),
            (None, Some("")) => bail!("keys.kek must be 64 hex digits when given"),
            (Some(path), None) => Some(KekSource::File(PathBuf::from(path))),
            (None, Some(value)) => {
                let source = KekSource::Value(SecretString::from(value.to_string()));
                source.load()?;
                Some(source)
            }
            (None, None) => None,
        };
        let (webauthn, webauthn_configured) = webauthn_settings(&raw.webauthn, listen)?;
        let oidc = raw
            .oidc
            .map(|oidc| {
                mdor_service::OidcSettings::new(mdor_service::OidcConfig {
                    issuer: oidc.issuer,
                    client_id: oidc.client_id,
                    client_auth: oidc.client_auth,
                    client_secret: oidc.client_secret.map(SecretString::from),
                    client_private_key_file: oidc.client_private_key_file.map(PathBuf::from),
                    client_key_id: oidc.client_key_id,
                    client_assertion_alg: oidc.client_assertion_alg,
                    redirect_url: oidc.redirect_url,
                    scopes: oidc.scopes,
                    accepted_acr_values: oidc.accepted_acr_values,
                    phishing_resistant_acr_values: oidc.phishing_resistant_acr_values,
                })
            })
            .transpose()
            .map_err(crate::load::describe)
            .context("[oidc]")?;
        Ok(Config {
            database_url: SecretString::from(url),
            max_connections: raw.database.max_connections,
            listen,
            trusted_proxy: raw.server.trusted_proxy,
            log_format,
            submissions_dir: submissions.data_dir.trim().into(),
            max_upload_bytes: submissions.max_upload_bytes,
            chunk_records: submissions.chunk_records,
            audit_signing_key,
            keep_cohorts_warm: raw.surveillance.keep_cohorts_warm,
            surveil_after_ingest: raw.surveillance.after_ingest,
            accounts_key_file,
            kek,
            webauthn,
            webauthn_configured,
            oidc,
        })
    }
}

/// The WebAuthn relying party: both settings, or neither (then `localhost` and the listening
/// port, for a server used on the machine it runs on). A configured origin must be HTTPS, as
/// browsers require everywhere but `localhost`, and lie within the relying party id.
fn webauthn_settings(
    raw: &RawWebauthn,
    listen: SocketAddr,
) -> anyhow::Result<(mdor_service::webauthn::WebauthnSettings, bool)> {
    use mdor_service::webauthn::{Relying, WebauthnSettings};
    let trimmed = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let (settings, configured) = match (trimmed(&raw.relying_party_id), trimmed(&raw.origin)) {
        (Some(relying_party_id), Some(origin)) => {
            let origin = url::Url::parse(&origin)
                .with_context(|| format!("webauthn.origin '{origin}' is not a URL"))?;
            let local = origin.host_str() == Some("localhost");
            if origin.scheme() != "https" && !local {
                bail!(
                    "webauthn.origin must be https:// (browsers refuse passkeys elsewhere but on localhost)"
                );
            }
            (
                WebauthnSettings {
                    relying_party_id,
                    origin,
                },
                true,
            )
        }
        (None, None) => {
            let origin = url::Url::parse(&format!("http://localhost:{}", listen.port()))
                .context("the default webauthn origin")?;
            (
                WebauthnSettings {
                    relying_party_id: "localhost".into(),
                    origin,
                },
                false,
            )
        }
        _ => bail!("webauthn.relying_party_id and webauthn.origin must be set together"),
    };
    Relying::new(&settings).map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok((settings, configured))
}

/// A database URL with any password replaced, for messages and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            redact_url("postgres://mdor:s3cret@db:5432/mdor"),
            "postgres://mdor:***@db:5432/mdor"
        );
        assert_eq!(redact_url("sqlite://mdor.db"), "sqlite://mdor.db");
        let config = Config::validate(RawConfig {
            database: RawDatabase {
                url: "postgres://u:hunter2@h/d".into(),
                max_connections: 4,
            },
            ..RawConfig::default()
        })
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_fail_at_start_up_naming_the_setting() {
        let bad_listen = RawConfig {
            server: RawServer {
                listen: "nowhere".into(),
                trusted_proxy: false,
            },
            ..RawConfig::default()
        };
        assert!(
            format!("{:#}", Config::validate(bad_listen).unwrap_err()).contains("server.listen")
        );
        let bad_url = RawConfig {
            database: RawDatabase {
                url: "mysql://x".into(),
                max_connections: 1,
            },
            ..RawConfig::default()
        };
        assert!(
            Config::validate(bad_url)
                .unwrap_err()
                .to_string()
                .contains("database.url")
        );
    }

    #[test]
    fn webauthn_is_bound_to_the_configured_https_origin_or_else_to_localhost() {
        let with = |relying_party_id: Option<&str>, origin: Option<&str>| {
            Config::validate(RawConfig {
                webauthn: RawWebauthn {
                    relying_party_id: relying_party_id.map(str::to_string),
                    origin: origin.map(str::to_string),
                },
                ..RawConfig::default()
            })
        };
        let default = with(None, None).unwrap();
        assert!(!default.webauthn_configured);
        assert_eq!(default.webauthn.relying_party_id, "localhost");
        assert_eq!(default.webauthn.origin.as_str(), "http://localhost:8080/");
        let configured = with(
            Some("registry.example.nhs.uk"),
            Some("https://registry.example.nhs.uk"),
        )
        .unwrap();
        assert!(configured.webauthn_configured);
        assert_eq!(
            configured.webauthn.relying_party_id,
            "registry.example.nhs.uk"
        );
        for (relying_party_id, origin, named) in [
            (Some("registry.example.nhs.uk"), None, "set together"),
            (
                Some("registry.example.nhs.uk"),
                Some("http://registry.example.nhs.uk"),
                "https",
            ),
            (
                Some("registry.example.nhs.uk"),
                Some("https://elsewhere.example.com"),
                "not within relying party id",
            ),
            (
                Some("registry.example.nhs.uk"),
                Some("not a url"),
                "webauthn.origin",
            ),
        ] {
            let message = format!("{:#}", with(relying_party_id, origin).unwrap_err());
            assert!(message.contains(named), "{message}");
        }
    }

    #[test]
    // figment's `Jail` fixes the closure's error type; its size does not matter in a test.
    #[allow(clippy::result_large_err)]
    fn environment_variables_override_the_file_and_flags_override_both() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("mdor.toml", "[server]\nlisten = \"127.0.0.1:9000\"\n[database]\nurl = \"sqlite://file.db\"\nmax_connections = 3\n")?;
            jail.set_env("MDOR_DATABASE__URL", "sqlite://env.db");
            jail.set_env("MDOR_TEST_POSTGRES_URL", "postgres://not/config");
            let config =
                Config::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.database_url.expose_secret(), "sqlite://env.db");
            assert_eq!(config.max_connections, 3);
            // On unless switched off: a file without [surveillance] keeps cohorts warm.
            assert!(config.keep_cohorts_warm);
            assert!(config.surveil_after_ingest);
            jail.set_env("MDOR_SURVEILLANCE__KEEP_COHORTS_WARM", "false");
            jail.set_env("MDOR_SURVEILLANCE__AFTER_INGEST", "false");
            let config =
                Config::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert!(!config.keep_cohorts_warm);
            assert!(!config.surveil_after_ingest);
            let flags = FlagOverrides {
                database_url: Some("sqlite://flag.db".into()),
                listen: None,
            };
            let config = Config::load(None, &flags).map_err(|e| e.to_string())?;
            assert_eq!(config.database_url.expose_secret(), "sqlite://flag.db");
            jail.set_env("MDOR_DATABASE__URLL", "sqlite://typo.db");
            let typo = Config::load(None, &FlagOverrides::default())
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(typo.contains("urll"), "{typo}");
            Ok(())
        });
    }

    #[test]
    fn oidc_is_off_without_its_section_checked_at_start_up_and_its_secret_never_printed() {
        assert!(
            Config::validate(RawConfig::default())
                .unwrap()
                .oidc
                .is_none()
        );
        let oidc = RawOidc {
            issuer: "https://idp.example".into(),
            client_id: "mdor".into(),
            client_auth: None,
            client_secret: Some("hunter2-client".into()),
            client_private_key_file: None,
            client_key_id: None,
            client_assertion_alg: None,
            redirect_url: "https://mdor.example/api/v1/session/oidc/callback".into(),
            scopes: Vec::new(),
            accepted_acr_values: vec!["AAL2_ANY".into(), "AAL3_ANY".into()],
            phishing_resistant_acr_values: vec!["AAL3_ANY".into()],
        };
        let config = Config::validate(RawConfig {
            oidc: Some(oidc.clone()),
            ..RawConfig::default()
        })
        .unwrap();
        assert_eq!(
            config.oidc.as_ref().unwrap().issuer(),
            "https://idp.example"
        );
        assert!(!format!("{config:?}").contains("hunter2-client"));
        assert!(!format!("{oidc:?}").contains("hunter2-client"));
        let plain_http = RawConfig {
            oidc: Some(RawOidc {
                issuer: "http://idp.example".into(),
                ..oidc
            }),
            ..RawConfig::default()
        };
        let error = format!("{:#}", Config::validate(plain_http).err().unwrap());
        assert!(error.contains("oidc.issuer"), "{error}");
    }

    /// The service's test key (PKCS#8), and its PEM text.
    fn test_client_key() -> (String, String) {
        let path = format!(
            "{}/../mdor-service/tests/it/data/oidc-client-rsa-pkcs8.pem",
            env!("CARGO_MANIFEST_DIR")
        );
        let pem = std::fs::read_to_string(&path).unwrap();
        (path, pem)
    }

    #[test]
    // figment's `Jail` fixes the closure's error type; its size does not matter in a test.
    #[allow(clippy::result_large_err)]
    fn private_key_jwt_takes_its_key_file_from_the_environment_and_never_prints_the_key() {
        let (key_path, pem) = test_client_key();
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mdor.toml",
                "[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"mdor\"\nclient_auth = \"private_key_jwt\"\nclient_assertion_alg = \"RS512\"\nclient_key_id = \"mdor-1\"\nredirect_url = \"https://mdor.example/api/v1/session/oidc/callback\"\naccepted_acr_values = [\"AAL3_ANY\"]\n",
            )?;
            // Without the key file the section is refused, naming the setting.
            let missing = Config::load(None, &FlagOverrides::default())
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(
                missing.contains("oidc.client_private_key_file: must name"),
                "{missing}"
            );
            jail.set_env("MDOR_OIDC__CLIENT_PRIVATE_KEY_FILE", "no-such-key.pem");
            let unreadable = Config::load(None, &FlagOverrides::default())
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(
                unreadable.contains("oidc.client_private_key_file: cannot be read: "),
                "{unreadable}"
            );
            jail.set_env("MDOR_OIDC__CLIENT_PRIVATE_KEY_FILE", &key_path);
            let config =
                Config::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            let printed = format!("{config:?}");
            assert!(printed.contains("client_private_key: \"***\""), "{printed}");
            assert!(printed.contains("RS512"), "{printed}");
            for line in pem.lines().filter(|line| !line.starts_with("-----")) {
                assert!(!printed.contains(line), "{printed}");
            }
            // A secret beside the key is refused, so nobody believes one is in use.
            jail.set_env("MDOR_OIDC__CLIENT_SECRET", "hunter2-client");
            let both = Config::load(None, &FlagOverrides::default())
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(
                both.contains("oidc.client_secret: must not be given"),
                "{both}"
            );
            assert!(!both.contains("hunter2-client"), "{both}");
            Ok(())
        });
    }

    #[test]
    fn each_bad_private_key_jwt_setting_is_named_at_start_up() {
        let (key_path, _) = test_client_key();
        let oidc = RawOidc {
            issuer: "https://idp.example".into(),
            client_id: "mdor".into(),
            client_auth: Some("private_key_jwt".into()),
            client_secret: None,
            client_private_key_file: Some(key_path),
            client_key_id: None,
            client_assertion_alg: None,
            redirect_url: "https://mdor.example/api/v1/session/oidc/callback".into(),
            scopes: Vec::new(),
            accepted_acr_values: vec!["AAL3_ANY".into()],
            phishing_resistant_acr_values: Vec::new(),
        };
        let validate = |oidc: RawOidc| {
            Config::validate(RawConfig {
                oidc: Some(oidc),
                ..RawConfig::default()
            })
        };
        assert!(validate(oidc.clone()).is_ok());
        let garbage = std::env::temp_dir().join(format!("mdor-garbage-{}.pem", std::process::id()));
        std::fs::write(
            &garbage,
            "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        for (changed, named) in [
            (
                RawOidc {
                    client_private_key_file: Some(garbage.display().to_string()),
                    ..oidc.clone()
                },
                "oidc.client_private_key_file: is not an RSA private key in PEM",
            ),
            (
                RawOidc {
                    client_assertion_alg: Some("ES256".into()),
                    ..oidc.clone()
                },
                "oidc.client_assertion_alg: must be RS256, RS384 or RS512",
            ),
            (
                RawOidc {
                    client_auth: Some("mutual_tls".into()),
                    ..oidc.clone()
                },
                "oidc.client_auth: ",
            ),
        ] {
            let message = format!("{:#}", validate(changed).err().unwrap());
            assert!(message.contains(named), "{message}");
        }
        std::fs::remove_file(garbage).unwrap();
    }

    #[test]
    fn the_example_config_is_valid() {
        let raw: RawConfig = Figment::from(Toml::string(EXAMPLE)).extract().unwrap();
        assert!(Config::validate(raw).is_ok());
    }
}
