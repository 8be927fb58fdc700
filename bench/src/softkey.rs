//! A software authenticator for the passkey scenarios: one ES256 key (ring) per virtual user, the
//! CBOR it needs (WebAuthn L3 §6.1 authenticator data, §6.5 attestation object with fmt "none",
//! RFC 9052 §7 COSE_Key), and the JSON a browser sends for `navigator.credentials.create` and `.get`
//! (the shapes of static/passkey.js). Just enough for yunid's relying party, not a general CTAP2 device.

use std::sync::atomic::{AtomicU32, Ordering};

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use yunid::crypto::{b64url, sha256};

/// User present (WebAuthn L3 §6.1 flags, bit 0).
const FLAG_UP: u8 = 0x01;
/// User verified (bit 2): a passkey login counts as two factors only with it.
const FLAG_UV: u8 = 0x04;
/// Attested credential data included (bit 6): only in a registration.
const FLAG_AT: u8 = 0x40;

/// A minimal CBOR encoder (RFC 8949 §3): unsigned and negative integers, byte and text strings, maps.
#[derive(Default)]
pub struct Cbor(Vec<u8>);

impl Cbor {
    fn head(&mut self, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => self.0.push(m | n as u8),
            24..=0xff => self.0.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                self.0.push(m | 25);
                self.0.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(m | 26);
                self.0.extend((n as u32).to_be_bytes());
            }
            _ => {
                self.0.push(m | 27);
                self.0.extend(n.to_be_bytes());
            }
        }
    }

    pub fn int(&mut self, v: i64) -> &mut Self {
        if v >= 0 {
            self.head(0, v as u64);
        } else {
            // Major type 1 encodes -1 - n.
            self.head(1, (-1 - v) as u64);
        }
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn text(&mut self, s: &str) -> &mut Self {
        self.head(3, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// The head of a map of `pairs` entries; the caller writes the keys and values after it.
    pub fn map(&mut self, pairs: u64) -> &mut Self {
        self.head(5, pairs);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// The COSE_Key of a P-256 public key for ES256 (RFC 9053 §7.1.1): {1: 2 (EC2), 3: -7 (ES256),
/// -1: 1 (P-256), -2: x, -3: y}, in CTAP2 canonical key order.
pub fn cose_es256(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut c = Cbor::default();
    c.map(5);
    c.int(1).int(2);
    c.int(3).int(-7);
    c.int(-1).int(1);
    c.int(-2).bytes(x);
    c.int(-3).bytes(y);
    c.into_bytes()
}

/// Authenticator data (WebAuthn L3 §6.1): rpIdHash ‖ flags ‖ signCount (big-endian) ‖ attested
/// credential data (AAGUID of zeros, credential id length and id, COSE key) when given.
pub fn authenticator_data(
    rp_id: &str,
    flags: u8,
    sign_count: u32,
    attested: Option<(&[u8], &[u8])>,
) -> Vec<u8> {
    let mut out = sha256(rp_id.as_bytes());
    out.push(flags);
    out.extend(sign_count.to_be_bytes());
    if let Some((cred_id, cose_key)) = attested {
        out.extend([0u8; 16]);
        out.extend((cred_id.len() as u16).to_be_bytes());
        out.extend_from_slice(cred_id);
        out.extend_from_slice(cose_key);
    }
    out
}

/// The attestation object with "none" attestation (WebAuthn L3 §8.7): {"fmt": "none", "attStmt": {},
/// "authData": bytes}.
pub fn attestation_none(auth_data: &[u8]) -> Vec<u8> {
    let mut c = Cbor::default();
    c.map(3);
    c.text("fmt").text("none");
    c.text("attStmt").map(0);
    c.text("authData").bytes(auth_data);
    c.into_bytes()
}

/// CollectedClientData (WebAuthn L3 §5.8.1), serialized as a browser would.
pub fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    // Field order as browsers send it; the relying party parses JSON, so order is not significant.
    format!(
        "{{\"type\":{},\"challenge\":{},\"origin\":{},\"crossOrigin\":false}}",
        Value::from(kind),
        Value::from(challenge),
        Value::from(origin)
    )
    .into_bytes()
}

/// One discoverable ES256 credential on a software authenticator.
pub struct SoftKey {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    cred_id: Vec<u8>,
    /// The user handle the relying party gave at registration (a discoverable credential returns it).
    user_handle: Vec<u8>,
    counter: AtomicU32,
    origin: String,
}

impl SoftKey {
    /// A fresh key pair for the relying party at `origin`.
    pub fn new(origin: &str) -> anyhow::Result<SoftKey> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a P-256 key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| anyhow::anyhow!("cannot load the P-256 key: {e}"))?;
        Ok(SoftKey {
            key,
            rng,
            cred_id: yunid::crypto::random_bytes::<16>().to_vec(),
            user_handle: Vec::new(),
            counter: AtomicU32::new(0),
            origin: origin.trim_end_matches('/').to_owned(),
        })
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        self.key
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "ECDSA signing failed".to_owned())
    }

    /// Answers `navigator.credentials.create` for the server's `publicKey` options: the
    /// `RegisterPublicKeyCredential` JSON (static/passkey.js `registration`). Keeps the user handle.
    pub fn register(&mut self, public_key: &Value) -> Result<Value, String> {
        let challenge = public_key["challenge"]
            .as_str()
            .ok_or("creation options without challenge")?;
        let rp_id = public_key["rp"]["id"]
            .as_str()
            .ok_or("creation options without rp.id")?;
        let user_id = public_key["user"]["id"]
            .as_str()
            .ok_or("creation options without user.id")?;
        let es256 = public_key["pubKeyCredParams"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["alg"] == -7));
        if !es256 {
            return Err("the relying party does not accept ES256".into());
        }
        self.user_handle = decode_b64(user_id).ok_or("user.id is not base64url")?;
        // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
        let point = self.key.public_key().as_ref();
        let cose = cose_es256(&point[1..33], &point[33..65]);
        let auth_data = authenticator_data(
            rp_id,
            FLAG_UP | FLAG_UV | FLAG_AT,
            self.counter.load(Ordering::Relaxed),
            Some((&self.cred_id, &cose)),
        );
        let client_data = client_data("webauthn.create", challenge, &self.origin);
        let id = b64url(&self.cred_id);
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "extensions": {},
            "response": {
                "attestationObject": b64url(&attestation_none(&auth_data)),
                "clientDataJSON": b64url(&client_data),
            },
        }))
    }

    /// Answers `navigator.credentials.get` for the server's `publicKey` options (no credential named:
    /// a discoverable login): the `PublicKeyCredential` JSON (static/passkey.js `assertion`).
    pub fn assert(&self, public_key: &Value) -> Result<Value, String> {
        let challenge = public_key["challenge"]
            .as_str()
            .ok_or("request options without challenge")?;
        let rp_id = public_key["rpId"]
            .as_str()
            .ok_or("request options without rpId")?;
        let count = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let auth_data = authenticator_data(rp_id, FLAG_UP | FLAG_UV, count, None);
        let client_data = client_data("webauthn.get", challenge, &self.origin);
        // WebAuthn L3 §6.3.3 step 11: the signature covers authenticatorData ‖ SHA-256(clientDataJSON).
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let signature = self.sign(&signed)?;
        let id = b64url(&self.cred_id);
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "extensions": {},
            "response": {
                "authenticatorData": b64url(&auth_data),
                "clientDataJSON": b64url(&client_data),
                "signature": b64url(&signature),
                "userHandle": b64url(&self.user_handle),
            },
        }))
    }
}

/// base64url with or without padding (the server sends it unpadded).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    yunid::crypto::b64url_decode(s.trim_end_matches('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbor_heads_use_the_shortest_form() {
        let mut c = Cbor::default();
        c.int(0)
            .int(23)
            .int(24)
            .int(255)
            .int(256)
            .int(65_536)
            .int(-1)
            .int(-25);
        assert_eq!(
            c.into_bytes(),
            [
                0x00, 0x17, 0x18, 0x18, 0x18, 0xff, 0x19, 0x01, 0x00, 0x1a, 0x00, 0x01, 0x00, 0x00, 0x20,
                0x38, 0x18
            ]
        );
        let mut c = Cbor::default();
        c.text("fmt").bytes(&[0xaa; 2]).map(0);
        assert_eq!(c.into_bytes(), [0x63, b'f', b'm', b't', 0x42, 0xaa, 0xaa, 0xa0]);
    }

    #[test]
    fn cose_key_is_the_es256_ec2_map() {
        let x = [0x11u8; 32];
        let y = [0x22u8; 32];
        let cose = cose_es256(&x, &y);
        let mut want = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        want.extend(x);
        want.extend([0x22, 0x58, 0x20]);
        want.extend(y);
        assert_eq!(cose, want);
        assert_eq!(cose.len(), 77);
    }

    #[test]
    fn registration_auth_data_carries_the_attested_credential() {
        let cred_id = [7u8; 16];
        let cose = cose_es256(&[1; 32], &[2; 32]);
        let ad = authenticator_data(
            "localhost",
            FLAG_UP | FLAG_UV | FLAG_AT,
            0,
            Some((&cred_id, &cose)),
        );
        assert_eq!(&ad[..32], sha256(b"localhost").as_slice());
        assert_eq!(ad[32], 0x45, "UP | UV | AT");
        assert_eq!(&ad[33..37], &[0, 0, 0, 0]);
        assert_eq!(&ad[37..53], &[0; 16], "AAGUID");
        assert_eq!(&ad[53..55], &[0, 16], "credential id length");
        assert_eq!(&ad[55..71], &cred_id);
        assert_eq!(&ad[71..], cose.as_slice());
        assert_eq!(ad.len(), 37 + 16 + 2 + 16 + 77);
    }

    #[test]
    fn assertion_auth_data_is_37_bytes() {
        let ad = authenticator_data("localhost", FLAG_UP | FLAG_UV, 258, None);
        assert_eq!(ad.len(), 37);
        assert_eq!(ad[32], 0x05, "UP | UV");
        assert_eq!(&ad[33..37], &[0, 0, 1, 2]);
    }

    #[test]
    fn attestation_object_has_fmt_none_and_an_empty_statement() {
        let ao = attestation_none(&[9, 9]);
        let mut want = vec![0xa3, 0x63];
        want.extend(b"fmt");
        want.extend([0x64]);
        want.extend(b"none");
        want.extend([0x67]);
        want.extend(b"attStmt");
        want.extend([0xa0, 0x68]);
        want.extend(b"authData");
        want.extend([0x42, 9, 9]);
        assert_eq!(ao, want);
    }

    #[test]
    fn assertion_signature_verifies_over_auth_data_and_client_data_hash() {
        let mut key = SoftKey::new("http://localhost:8080/").unwrap();
        let created = key
            .register(&json!({
                "challenge": "Y2hhbGxlbmdl",
                "rp": { "id": "localhost", "name": "x" },
                "user": { "id": b64url(&[5u8; 16]), "name": "u", "displayName": "u" },
                "pubKeyCredParams": [{ "type": "public-key", "alg": -7 }],
            }))
            .unwrap();
        let cd =
            yunid::crypto::b64url_decode(created["response"]["clientDataJSON"].as_str().unwrap()).unwrap();
        let cd: Value = serde_json::from_slice(&cd).unwrap();
        assert_eq!(cd["type"], "webauthn.create");
        assert_eq!(cd["origin"], "http://localhost:8080");
        assert_eq!(cd["challenge"], "Y2hhbGxlbmdl");

        let got = key
            .assert(&json!({ "challenge": "YWJj", "rpId": "localhost" }))
            .unwrap();
        let field = |k: &str| yunid::crypto::b64url_decode(got["response"][k].as_str().unwrap()).unwrap();
        let (ad, cd, sig) = (
            field("authenticatorData"),
            field("clientDataJSON"),
            field("signature"),
        );
        assert_eq!(&ad[33..37], &[0, 0, 0, 1], "the counter moves on each assertion");
        assert_eq!(field("userHandle"), [5u8; 16]);
        let mut msg = ad.clone();
        msg.extend(sha256(&cd));
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            key.key.public_key().as_ref().to_vec(),
        );
        public.verify(&msg, &sig).expect("a valid ES256 signature");
    }
}
