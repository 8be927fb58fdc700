// passkeys: filled in with the WebAuthn work
