// Passkeys (WebAuthn) for yunid's pages: the only script on them. No framework, no inline code.
(function () {
  'use strict';
  if (!window.PublicKeyCredential) return;

  function toBuf(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64u(buf) {
    var bytes = new Uint8Array(buf), s = '';
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function withIds(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: toBuf(c.id) }); });
  }
  function creation(pk) {
    return Object.assign({}, pk, {
      challenge: toBuf(pk.challenge),
      user: Object.assign({}, pk.user, { id: toBuf(pk.user.id) }),
      excludeCredentials: withIds(pk.excludeCredentials)
    });
  }
  function request(pk) {
    return Object.assign({}, pk, { challenge: toBuf(pk.challenge), allowCredentials: withIds(pk.allowCredentials) });
  }
  function registration(c) {
    return {
      id: c.id, rawId: toB64u(c.rawId), type: c.type, extensions: {},
      response: { attestationObject: toB64u(c.response.attestationObject), clientDataJSON: toB64u(c.response.clientDataJSON) }
    };
  }
  function assertion(c) {
    var r = c.response;
    return {
      id: c.id, rawId: toB64u(c.rawId), type: c.type, extensions: {},
      response: {
        authenticatorData: toB64u(r.authenticatorData), clientDataJSON: toB64u(r.clientDataJSON),
        signature: toB64u(r.signature), userHandle: r.userHandle ? toB64u(r.userHandle) : null
      }
    };
  }
  function post(url, csrf, body) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      if (r.ok) return r.json();
      // Adding a credential needs a recent second factor: go through the step-up, which comes back here.
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (body && body.step_up && body.step_up.charAt(0) === '/') window.location.assign(body.step_up);
        throw new Error('HTTP ' + r.status);
      });
    });
  }

  // Login: the passkey button, and conditional UI (autofill) on the user-name field.
  var form = document.getElementById('passkey-form');
  function signIn(mediation, signal) {
    var csrf = form.elements.csrf.value;
    return post('/login/passkey/start', csrf).then(function (start) {
      var options = { publicKey: request(start.options.publicKey) };
      if (mediation) options.mediation = mediation;
      if (signal) options.signal = signal;
      return navigator.credentials.get(options).then(function (cred) {
        form.elements.ceremony.value = start.ceremony;
        form.elements.credential.value = JSON.stringify(assertion(cred));
        form.submit();
      });
    });
  }
  if (form) {
    var button = document.getElementById('passkey-button');
    if (button) button.addEventListener('click', function () { signIn(null).catch(function (e) { console.warn(e); }); });
    if (document.getElementById('username') && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (ok) signIn('conditional').catch(function (e) { console.warn(e); });
      });
    }
  }

  // Account page: add a passkey.
  var add = document.getElementById('passkey-add');
  if (add) {
    add.addEventListener('click', function () {
      var name = document.getElementById('passkey-name').value;
      var csrf = add.getAttribute('data-csrf');
      post('/account/passkeys/start', csrf, { name: name }).then(function (start) {
        return navigator.credentials.create({ publicKey: creation(start.options.publicKey) }).then(function (cred) {
          return post('/account/passkeys/finish', csrf, { ceremony: start.ceremony, name: name, credential: registration(cred) });
        });
      }).then(function () { window.location.reload(); }, function (e) {
        var status = document.getElementById('passkey-status');
        if (status) status.textContent = String(e);
      });
    });
  }
})();
