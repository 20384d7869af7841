//! Signing keys: a JWKS document parsed into keys `ring` verifies with.
//! Each key is bound to one algorithm (given by `alg`, or inferred from
//! `kty`/`crv`), so a token can never choose how its key is used.

use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Alg {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    pub(super) fn parse(s: &str) -> Option<Alg> {
        match s {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }
}

enum Material {
    Hmac(ring::hmac::Key),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed P-256 point (0x04 ‖ x ‖ y).
    Ec(Vec<u8>),
    Ed(Vec<u8>),
}

pub(super) struct Key {
    pub(super) kid: Option<String>,
    pub(super) alg: Alg,
    material: Material,
}

impl Key {
    pub(super) fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(k) => ring::hmac::verify(k, message, sig).is_ok(),
            Material::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            Material::Ec(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Material::Ed(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

/// The keys of one JWKS document, immutable once parsed. Shared read-only
/// by every worker (an `Arc`); a refresh builds a new set.
pub struct KeySet {
    pub(super) keys: Vec<Key>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether some key carries this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

/// Parses a JWKS document.
pub fn parse_jwks(text: &str) -> Result<KeySet, String> {
    let set: Jwks = serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    if set.keys.is_empty() {
        return Err("the key set has no keys".into());
    }
    let mut keys = Vec::new();
    for (i, k) in set.keys.into_iter().enumerate() {
        let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
            let v = v
                .as_deref()
                .ok_or_else(|| format!("key {i} ({}) has no `{name}`", k.kty))?;
            b64url(v.as_bytes()).ok_or_else(|| format!("key {i}: `{name}` is not base64url"))
        };
        let (inferred, material) = match (k.kty.as_str(), k.crv.as_deref()) {
            ("RSA", _) => (
                Alg::Rs256,
                Material::Rsa {
                    n: field(&k.n, "n")?,
                    e: field(&k.e, "e")?,
                },
            ),
            ("EC", Some("P-256")) => {
                let (x, y) = (field(&k.x, "x")?, field(&k.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(format!("key {i}: a P-256 point has 32-byte x and y"));
                }
                let mut p = vec![4u8];
                p.extend_from_slice(&x);
                p.extend_from_slice(&y);
                (Alg::Es256, Material::Ec(p))
            }
            ("OKP", Some("Ed25519")) => (Alg::EdDsa, Material::Ed(field(&k.x, "x")?)),
            ("oct", _) => (
                Alg::Hs256,
                Material::Hmac(ring::hmac::Key::new(
                    ring::hmac::HMAC_SHA256,
                    &field(&k.k, "k")?,
                )),
            ),
            (kty, crv) => {
                return Err(format!(
                    "key {i}: unsupported key type {kty:?}{} (RSA, EC P-256, OKP Ed25519 and oct are)",
                    crv.map(|c| format!(" / curve {c:?}")).unwrap_or_default()
                ));
            }
        };
        let alg = match k.alg.as_deref() {
            None => inferred,
            Some(a) => match Alg::parse(a) {
                Some(a) if a == inferred => a,
                _ => {
                    return Err(format!(
                        "key {i}: algorithm {a:?} is not supported for this key (HS256, RS256, ES256, EdDSA are)"
                    ));
                }
            },
        };
        keys.push(Key {
            kid: k.kid,
            alg,
            material,
        });
    }
    Ok(KeySet { keys })
}

/// Decodes base64url (RFC 4648 §5), unpadded or with whole padding as JWK
/// values sometimes carry; a short or stray `=`, the standard alphabet's
/// `+` and `/`, and non-zero trailing bits are refused.
pub fn b64url(s: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    let engine = if s.ends_with(b"=") {
        URL_SAFE
    } else {
        URL_SAFE_NO_PAD
    };
    engine.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(data: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    #[test]
    fn base64url_round_trips() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64url(b64(&data).as_bytes()), Some(data));
        }
        assert_eq!(b64url(b"aGk="), Some(b"hi".to_vec()));
        assert_eq!(b64url(b"a"), None);
        assert_eq!(b64url(b"a+b/"), None);
        // Padding only where it is whole; no `=` in the middle or short of a quad.
        assert_eq!(b64url(b"aGk"), Some(b"hi".to_vec()));
        assert_eq!(b64url(b"YQ="), None);
        assert_eq!(b64url(b"YQ=="), Some(b"a".to_vec()));
        assert_eq!(b64url(b"Y=Q="), None);
    }

    #[test]
    fn jwks_errors_say_what_is_wrong() {
        for (text, says) in [
            ("{}", "not a JWKS document"),
            ("{\"keys\":[]}", "no keys"),
            (
                "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
                "unsupported key type",
            ),
            ("{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", "no `n`"),
            (
                "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\",\"alg\":\"RS256\"}]}",
                "not supported for this key",
            ),
        ] {
            let e = parse_jwks(text).err().unwrap();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
