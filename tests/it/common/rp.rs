//! A real relying party built with the `openidconnect` crate (discovery, code + PKCE, ID token
//! validation against the JWKS, userinfo, refresh), over a reqwest-backed HTTP client.

use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope,
};

pub type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

#[derive(Debug)]
pub struct HttpError(pub String);
impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for HttpError {}

/// The RP's HTTP client: a plain reqwest client that does not follow redirects.
pub async fn http_client(req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let client = super::http();
    let (parts, body) = req.into_parts();
    let res = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let mut builder = http::Response::builder().status(res.status());
    for (k, v) in res.headers() {
        builder = builder.header(k, v);
    }
    let bytes = res.bytes().await.map_err(|e| HttpError(e.to_string()))?;
    builder.body(bytes.to_vec()).map_err(|e| HttpError(e.to_string()))
}

pub struct Rp {
    pub client: Client,
    pub metadata: CoreProviderMetadata,
}

/// One authorization attempt: the URL to visit and what must be kept to finish it.
pub struct Attempt {
    pub url: url::Url,
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
}

impl Rp {
    /// Discovers the provider and builds the client, as any OIDC RP library would.
    pub async fn discover(issuer: &str, client: &super::TestClient) -> Rp {
        let metadata =
            CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.to_owned()).unwrap(), &http_client)
                .await
                .expect("discovery");
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(client.id.clone()),
            Some(ClientSecret::new(client.secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap());
        Rp { client, metadata }
    }

    pub fn start(&self, scopes: &[&str]) -> Attempt {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = self.client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in scopes {
            req = req.add_scope(Scope::new((*s).to_owned()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Attempt {
            url,
            state,
            nonce,
            verifier,
        }
    }

    pub async fn exchange(
        &self,
        code: &str,
        verifier: PkceCodeVerifier,
    ) -> Result<openidconnect::core::CoreTokenResponse, String> {
        self.client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| e.to_string())?
            .set_pkce_verifier(verifier)
            .request_async(&http_client)
            .await
            .map_err(|e| format!("{e:?}"))
    }
}
