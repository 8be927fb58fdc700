//! The grants on their own: a real store (SQLite in a temporary directory), a fixed `now`, and a fixed
//! sequence of random bytes, so every token and every expiry is known in advance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde_json::Value;

use super::*;
use crate::crypto::{self, Secrets};
use crate::keys::KeySet;
use crate::services::licence::Release;
use crate::services::oidc::BoxFuture;
use crate::services::oidc::claims::GrantSubject;
use crate::services::oidc::code::Refusal;
use crate::services::oidc::scope::ScopeSet;
use crate::services::oidc::tokens::TokenSettings;
use crate::store::clients::SubjectType;
use crate::store::families::{CodeRow, Family};
use crate::store::orgs::{Organisation, Representation};
use crate::store::persons::{PersonRow, PersonStatus};
use crate::store::sessions::SessionRow;

const NOW: i64 = 1_800_000_000;
const CALLBACK: &str = "https://app.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const ISS: &str = "https://id.example";

/// Each call fills with one byte value, the next call with the next: tokens are distinct and known.
struct FixedRandom(AtomicU8);

impl FixedRandom {
    fn new() -> FixedRandom {
        FixedRandom(AtomicU8::new(1))
    }

    /// The token the `n`-th call (from 1) of `token()` returns.
    fn nth_token(n: u8) -> String {
        crypto::b64url(&[n; 32])
    }
}

impl Random for FixedRandom {
    fn fill(&self, out: &mut [u8]) {
        out.fill(self.0.fetch_add(1, Ordering::Relaxed));
    }
}

struct NoRepresentations;

impl Representations for NoRepresentations {
    fn current_acting<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a Client,
        _: i64,
    ) -> BoxFuture<'a, anyhow::Result<Option<(Representation, Organisation)>>> {
        Box::pin(async { Ok(None) })
    }
}

struct NoLicences;

impl Licences for NoLicences {
    fn release<'a>(
        &'a self,
        _: &'a Client,
        _: &'a Release<'a>,
        _: &'a GrantSubject,
        _: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Value>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

struct World {
    _dir: tempfile::TempDir,
    db: Db,
    keys: Arc<KeySet>,
    secrets: Secrets,
    rng: FixedRandom,
    app: Client,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/grants.db", dir.path().display());
        let db = Db::connect(&url, 2).await.unwrap();
        let secrets = Secrets::from_master(&[7u8; 32]).unwrap();
        let app = client("app", &["authorization_code", "refresh_token"]);
        db.insert_client(&app, NOW).await.unwrap();
        let person = PersonRow {
            id: "person-1".into(),
            id_number_hash: secrets.id_hash("11010519491231002X"),
            id_number_enc: secrets.encrypt("11010519491231002X", b"person-1").unwrap(),
            name: "Alice".into(),
            phone: None,
            password_hash: None,
            real_name_level: 1,
            status: PersonStatus::Active,
            phone_verified: false,
            real_name_verified_at: None,
            real_name_method: None,
            real_name_verified_by: None,
            version: 1,
            password_expires_at: None,
            password_must_change: false,
        };
        db.insert_person(&person, NOW).await.unwrap();
        World {
            _dir: dir,
            db,
            keys: Arc::new(KeySet::generate(NOW).unwrap()),
            secrets,
            rng: FixedRandom::new(),
            app,
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            db: &self.db,
            minting: Minting {
                keys: self.keys.clone(),
                secrets: &self.secrets,
                settings: TokenSettings {
                    iss: ISS,
                    access_token_ttl: 600,
                    id_token_ttl: 600,
                    refresh_idle_ttl: 3600,
                },
            },
            settings: Settings {
                session_idle_ttl: 1800,
                grant_ttl: 30 * 24 * 3600,
            },
            representations: &NoRepresentations,
            licences: &NoLicences,
            rng: &self.rng,
        }
    }

    /// A grant to the app with a code for it; returns the code.
    async fn code(&self, family_id: &str, scope: &str, session: Option<&str>) -> String {
        if let Some(sid) = session {
            self.db
                .insert_session(&SessionRow {
                    id_hash: crypto::token_hash(sid),
                    sid: sid.into(),
                    person_id: "person-1".into(),
                    auth_time: NOW - 10,
                    amr: crate::amr::Amr::of(&[crate::amr::Method::Pwd]),
                    acr: 1,
                    created_at: NOW - 10,
                    last_seen: NOW - 10,
                    expires_at: NOW + 3600,
                })
                .await
                .unwrap();
        }
        self.db
            .insert_family(&Family {
                id: family_id.into(),
                client_id: "app".into(),
                person_id: Some("person-1".into()),
                session_sid: session.map(str::to_owned),
                scope: ScopeSet::parse(scope),
                claims: None,
                acr: 1,
                amr: crate::amr::Amr::of(&[crate::amr::Method::Pwd]),
                auth_time: NOW - 10,
                nonce: Some("n-0S6_WzA2Mj".into()),
                created_at: NOW - 5,
                expires_at: NOW + 86_400,
                revoked_at: None,
                acting_rep_id: None,
                licence_types: String::new(),
            })
            .await
            .unwrap();
        let code = format!("code-of-{family_id}");
        self.db
            .insert_code(
                &crypto::token_hash(&code),
                &CodeRow {
                    client_id: "app".into(),
                    redirect_uri: CALLBACK.into(),
                    code_challenge: authorization_code::s256_challenge(VERIFIER),
                    family_id: family_id.into(),
                    expires_at: NOW + 60,
                },
            )
            .await
            .unwrap();
        code
    }

    async fn redeem(&self, code: &str, verifier: &str, now: i64) -> Result<TokenResponse, GrantError> {
        let input = authorization_code::Input {
            code,
            redirect_uri: CALLBACK,
            code_verifier: verifier,
        };
        exchange(
            &self.ctx(),
            &self.app,
            GrantRequest::AuthorizationCode(input),
            now,
        )
        .await
    }

    async fn refresh(&self, token: &str, scope: Option<&str>, now: i64) -> Result<TokenResponse, GrantError> {
        let input = refresh_token::Input {
            refresh_token: token,
            scope: Ok(scope.map(ScopeSet::parse)),
        };
        exchange(&self.ctx(), &self.app, GrantRequest::RefreshToken(input), now).await
    }

    fn claims(&self, jwt: &str) -> Value {
        self.keys.verify(jwt).unwrap().1
    }
}

fn client(id: &str, grants: &[&str]) -> Client {
    Client {
        secret_hash: Some(crypto::token_hash("secret")),
        redirect_uris: vec![CALLBACK.into()],
        scopes: ["openid", "profile", "phone", "offline_access"]
            .map(String::from)
            .to_vec(),
        grant_types: grants.iter().map(|g| (*g).to_owned()).collect(),
        subject_type: SubjectType::Public,
        ..Client::example(id)
    }
}

#[tokio::test]
async fn a_code_is_redeemed_once_and_its_replay_revokes_the_grant() {
    let w = World::new().await;
    let code = w.code("f1", "openid profile offline_access", None).await;
    let tokens = w.redeem(&code, VERIFIER, NOW).await.unwrap();
    // Randomness in order: the refresh token (1, stored by the statement that uses the code), then the
    // access token's jti (2).
    assert_eq!(
        tokens.refresh_token.as_deref(),
        Some(FixedRandom::nth_token(1).as_str())
    );
    assert_eq!(tokens.scope, "openid profile offline_access");
    assert_eq!(tokens.expires_in, 600);
    let at = w.claims(&tokens.access_token);
    assert_eq!(at["iat"], NOW);
    assert_eq!(at["exp"], NOW + 600);
    assert_eq!(at["jti"], "02020202020242028202020202020202");
    assert_eq!(at["sub"], "person-1");
    let id = w.claims(tokens.id_token.as_deref().unwrap());
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["iss"], ISS);
    assert_eq!(id["exp"], NOW + 600);

    // RFC 6749 §4.1.2: the second use is refused and what the first issued is revoked.
    match w.redeem(&code, VERIFIER, NOW + 1).await {
        Err(GrantError::CodeRefused(Refusal::Reused(f))) => assert_eq!(f, "f1"),
        other => panic!("replay: {other:?}"),
    }
    let refresh = tokens.refresh_token.unwrap();
    assert!(matches!(
        w.refresh(&refresh, None, NOW + 2).await,
        Err(GrantError::GrantRevoked)
    ));
}

#[tokio::test]
async fn a_refused_redemption_leaves_the_code_usable() {
    let w = World::new().await;
    let code = w.code("f1", "openid", None).await;
    let other = "x".repeat(43);
    assert!(matches!(
        w.redeem(&code, &other, NOW).await,
        Err(GrantError::CodeRefused(Refusal::Verifier))
    ));
    assert!(matches!(
        w.redeem(&code, "short", NOW).await,
        Err(GrantError::MalformedVerifier)
    ));
    assert!(matches!(
        w.redeem("no-such-code", VERIFIER, NOW).await,
        Err(GrantError::UnknownCode)
    ));
    let tokens = w.redeem(&code, VERIFIER, NOW).await.unwrap();
    // No refresh_token scope question here: the app may refresh, so it gets one.
    assert!(tokens.refresh_token.is_some());
}

#[tokio::test]
async fn a_code_expires_at_the_given_now() {
    let w = World::new().await;
    let code = w.code("f1", "openid", None).await;
    assert!(matches!(
        w.redeem(&code, VERIFIER, NOW + 60).await,
        Err(GrantError::CodeRefused(Refusal::Expired))
    ));
    assert!(w.redeem(&code, VERIFIER, NOW + 59).await.is_ok());
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let w = World::new().await;
    let code = w.code("f1", "openid profile offline_access", None).await;
    let first = w
        .redeem(&code, VERIFIER, NOW)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    // The successor is drawn first (3), then the access token's jti (4).
    let second = w.refresh(&first, None, NOW + 10).await.unwrap();
    let next = second.refresh_token.unwrap();
    assert_eq!(next, FixedRandom::nth_token(3));
    assert_eq!(w.claims(&second.access_token)["iat"], NOW + 10);
    // OIDC Core §12.2: no nonce in a refreshed ID token.
    assert!(w.claims(&second.id_token.unwrap()).get("nonce").is_none());

    assert!(matches!(
        w.refresh(&first, None, NOW + 20).await,
        Err(GrantError::RefreshTokenReused)
    ));
    // The whole family is gone, the successor too.
    assert!(matches!(
        w.refresh(&next, None, NOW + 30).await,
        Err(GrantError::GrantRevoked)
    ));
}

#[tokio::test]
async fn refresh_narrows_but_never_widens_and_a_refusal_does_not_consume() {
    let w = World::new().await;
    let code = w.code("f1", "openid offline_access", None).await;
    let token = w
        .redeem(&code, VERIFIER, NOW)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    assert!(matches!(
        w.refresh(&token, Some("openid profile"), NOW + 1).await,
        Err(GrantError::ScopeExceedsGrant)
    ));
    let narrowed = w.refresh(&token, Some("offline_access"), NOW + 2).await.unwrap();
    assert_eq!(narrowed.scope, "offline_access");
    assert!(narrowed.id_token.is_none(), "no openid, no ID token");
}

#[tokio::test]
async fn refresh_tokens_expire_at_the_given_now() {
    let w = World::new().await;
    let code = w.code("f1", "openid offline_access", None).await;
    let token = w
        .redeem(&code, VERIFIER, NOW)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    // Idle limit 3600 s from issue.
    assert!(matches!(
        w.refresh(&token, None, NOW + 3600).await,
        Err(GrantError::RefreshTokenExpired)
    ));
}

#[tokio::test]
async fn a_grant_without_offline_access_ends_with_its_session() {
    let w = World::new().await;
    let code = w.code("f1", "openid", Some("sid-1")).await;
    let token = w
        .redeem(&code, VERIFIER, NOW)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    // Last seen at NOW - 10; idle for more than 1800 s ends it (and the refusal consumes nothing).
    assert!(matches!(
        w.refresh(&token, None, NOW - 10 + 1801).await,
        Err(GrantError::SessionEnded)
    ));
    assert!(w.refresh(&token, None, NOW + 100).await.is_ok());
}

#[tokio::test]
async fn a_refresh_token_works_only_for_its_client() {
    let w = World::new().await;
    let code = w.code("f1", "openid offline_access", None).await;
    let token = w
        .redeem(&code, VERIFIER, NOW)
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    let other = client("other", &["refresh_token"]);
    let input = refresh_token::Input {
        refresh_token: &token,
        scope: Ok(None),
    };
    assert!(matches!(
        exchange(&w.ctx(), &other, GrantRequest::RefreshToken(input), NOW).await,
        Err(GrantError::RefreshTokenOfAnotherClient)
    ));
    // Untouched by the stranger's attempt.
    assert!(w.refresh(&token, None, NOW + 1).await.is_ok());
}

#[tokio::test]
async fn client_credentials_issue_for_the_client_within_its_scopes() {
    let w = World::new().await;
    let service = client("service", &["client_credentials"]);
    let ask = |scope: Option<&str>| {
        GrantRequest::ClientCredentials(client_credentials::Input {
            scope: scope.map(ScopeSet::parse),
        })
    };
    let all = exchange(&w.ctx(), &service, ask(None), NOW).await.unwrap();
    assert_eq!(all.scope, "profile phone offline_access");
    assert!(all.id_token.is_none() && all.refresh_token.is_none());
    let at = w.claims(&all.access_token);
    assert_eq!(at["sub"], "service");
    assert_eq!(at["exp"], NOW + 600);
    for bad in ["openid", "profile licences"] {
        assert!(matches!(
            exchange(&w.ctx(), &service, ask(Some(bad)), NOW).await,
            Err(GrantError::InvalidScope(_))
        ));
    }
    // A grant the client did not register.
    assert!(matches!(
        exchange(&w.ctx(), &w.app, ask(None), NOW).await,
        Err(GrantError::UnauthorizedClient(GrantType::ClientCredentials))
    ));
}

#[test]
fn grant_types_parse_exactly() {
    assert_eq!(GrantType::parse("refresh_token"), Some(GrantType::RefreshToken));
    assert_eq!(GrantType::parse("Authorization_Code"), None);
    assert_eq!(GrantType::parse("password"), None);
    for g in GrantType::ALL {
        assert_eq!(GrantType::parse(g.as_str()), Some(g));
    }
}
