//! The RS256 material of the policy benchmark: a 2048-bit RSA key made with
//! the `openssl` CLI when the suite starts (a benchmark key, thrown away
//! with the scratch directory, never committed), the JWKS file that ringway
//! verifies with, and one token signed with the key that every request
//! carries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

/// The claims ringway's `[route.jwt]` is configured to require.
pub const ISSUER: &str = "https://issuer.bench.example";
pub const AUDIENCE: &str = "api";
pub const SCOPE: &str = "read:users";
/// The key id in the token header and the JWKS.
const KID: &str = "bench-rs256";
/// How long the token is valid: longer than any run of the suite.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A JWKS file and a token signed by its one key.
pub struct Rs256 {
    pub jwks_file: PathBuf,
    /// `header.payload.signature`, for `Authorization: Bearer`.
    pub token: String,
    /// One line for the report.
    pub description: String,
}

impl Rs256 {
    /// Makes the key in `dir` and signs a token that expires in a day.
    pub fn generate(dir: &Path) -> Result<Rs256> {
        std::fs::create_dir_all(dir)?;
        let der_file = dir.join("bench-rsa.der");
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
                "-out",
            ])
            .arg(&der_file)
            .output()
            .context("cannot run openssl (needed to make the benchmark's RSA key)")?;
        if !out.status.success() {
            bail!(
                "openssl genpkey failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // OpenSSL 3 writes a DER private key as PKCS#1 (RSAPrivateKey);
        // others may write PKCS#8.
        let der = std::fs::read(&der_file)?;
        let key = RsaKeyPair::from_der(&der)
            .or_else(|_| RsaKeyPair::from_pkcs8(&der))
            .map_err(|e| anyhow::anyhow!("openssl's RSA key does not load in ring: {e}"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token = sign(&key, now)?;
        let jwks_file = dir.join("jwks.json");
        std::fs::write(&jwks_file, jwks(&key))?;
        let description = format!(
            "RS256 (RSASSA-PKCS1-v1_5 SHA-256) with a 2048-bit RSA key made at the start of the suite by \
             `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`; one token ({} bytes; claims iss, aud, sub, \
             scope, iat, nbf, exp) signed with ring and sent in `Authorization: Bearer` by every request of every variant",
            token.len()
        );
        Ok(Rs256 {
            jwks_file,
            token,
            description,
        })
    }
}

/// A JWKS document with the public half of `key`.
fn jwks(key: &RsaKeyPair) -> String {
    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = key.public().into();
    let doc = serde_json::json!({
        "keys": [{
            "kty": "RSA",
            "kid": KID,
            "alg": "RS256",
            "use": "sig",
            "n": base64url(&public.n),
            "e": base64url(&public.e),
        }]
    });
    doc.to_string()
}

/// A token valid from a minute before `now` for [`LIFETIME`].
fn sign(key: &RsaKeyPair, now: u64) -> Result<String> {
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": KID });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "bench-user",
        "scope": SCOPE,
        "iat": now,
        "nbf": now.saturating_sub(60),
        "exp": now + LIFETIME.as_secs(),
    });
    let signed = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|e| anyhow::anyhow!("RS256 signing failed: {e}"))?;
    Ok(format!("{signed}.{}", base64url(&signature)))
}

/// Base64 with the URL-safe alphabet and no padding (RFC 7515 §2).
pub fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
