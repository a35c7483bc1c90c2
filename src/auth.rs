//! Who is asking, over HTTP: tokens per principal (a domain, or `platform` for the platform
//! team), stored as SHA-256 digests and compared in constant time. The gateway's HTTP ingress and
//! the schema registry share them: a domain's token lets it write its own products' events and
//! schemas.
//!
//! A tokens file (`meshline up --tokens FILE`) lists the digests:
//!
//! ```yaml
//! tokens:
//!   - principal: player
//!     sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//! ```
//!
//! (`printf %s "$TOKEN" | sha256sum` gives the digest of a token.) A request presents its token
//! as `Authorization: Bearer TOKEN`, or as Confluent's clients send basic credentials
//! (`basic.auth.user.info=PRINCIPAL:TOKEN`): `Authorization: Basic base64(PRINCIPAL:TOKEN)`.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The principal of the platform team: it administers the schema registry (global settings,
/// modes, deletes); it is no domain, so it writes no product's events.
pub const PLATFORM: &str = "platform";

/// Errors loading tokens.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a tokens file.
    #[error("{path} is not a tokens file: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    /// The accepted tokens.
    tokens: Vec<TokenEntry>,
}

/// One accepted token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Who presents it: a domain name.
    principal: String,
    /// The token's SHA-256 digest, in hex.
    sha256: String,
}

/// The accepted tokens, as digests.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Loads a tokens file.
    pub fn load(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: shown.clone(),
            source,
        })?;
        let parse = |message: String| Error::Parse {
            path: shown.clone(),
            message,
        };
        let file: TokensFile = serde_norway::from_str(&text).map_err(|e| parse(e.to_string()))?;
        let mut entries = Vec::with_capacity(file.tokens.len());
        for entry in file.tokens {
            let bytes = hex_digest(&entry.sha256).ok_or_else(|| {
                parse(format!(
                    "the sha256 of principal {} is not 64 hex digits",
                    entry.principal
                ))
            })?;
            entries.push((entry.principal, bytes));
        }
        Ok(Self { entries })
    }

    /// One fresh random token per principal: the tokens (to show once) and their digests.
    pub fn generate<'a>(
        principals: impl IntoIterator<Item = &'a str>,
    ) -> (Self, Vec<(String, String)>) {
        let mut tokens = Self::default();
        let mut shown = Vec::new();
        for principal in principals {
            let token = format!("mlt_{}", uuid::Uuid::new_v4().simple());
            tokens.entries.push((principal.to_owned(), digest(&token)));
            shown.push((principal.to_owned(), token));
        }
        (tokens, shown)
    }

    /// The principal presenting `token`. Every entry is compared, each in constant time, so the
    /// answer's timing tells nothing about the tokens.
    pub fn principal(&self, token: &str) -> Option<&str> {
        let presented = digest(token);
        let mut found = None;
        for (principal, expected) in &self.entries {
            if bool::from(presented.ct_eq(expected)) {
                found = Some(principal.as_str());
            }
        }
        found
    }
}

fn hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_names_its_principal_and_others_name_none() {
        let (tokens, shown) = Tokens::generate(["player", "labels"]);
        assert_eq!(tokens.principal(&shown[0].1), Some("player"));
        assert_eq!(tokens.principal(&shown[1].1), Some("labels"));
        assert_eq!(tokens.principal("mlt_guess"), None);
    }

    #[test]
    fn a_tokens_file_holds_digests_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        // sha256("password")
        std::fs::write(
            &path,
            "tokens:\n  - principal: player\n    sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\n",
        )
        .unwrap();
        let tokens = Tokens::load(&path).unwrap();
        assert_eq!(tokens.principal("password"), Some("player"));
        assert_eq!(
            tokens.principal("5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"),
            None
        );
        std::fs::write(
            &path,
            "tokens:\n  - principal: player\n    sha256: nothex\n",
        )
        .unwrap();
        assert!(Tokens::load(&path)
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
    }
}
