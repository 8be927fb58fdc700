-- Signing keys in the database, sealed under the key-encryption key, so that every node signs and
-- publishes the same keys; and the nodes' reports of which keys they publish (publish before sign).
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    -- base64(nonce ‖ AES-256-GCM(PKCS#8)), additional data "yunid/signing-key/v1|kid|alg"
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- NULL while the key is only published; set when it starts signing.
    activated_at BIGINT,
    -- When it stopped signing; published until retired_at + grace.
    retired_at BIGINT
);

CREATE TABLE key_nodes (
    node_id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL,
    -- The kids this node's JWKS holds, space separated.
    published TEXT NOT NULL
);
