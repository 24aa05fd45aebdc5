// moat WebAuthn: the one piece of the UI that needs JavaScript.
//
// Markup (the page works without this script except for the key itself):
//
//   <form data-webauthn="register|login|passkey"
//         data-begin="/begin-url" data-finish="/finish-url"
//         [data-redirect="/after"] method="post" action="/fallback">
//     ... inputs (a key name, a passkey checkbox) ...
//     <p data-webauthn-error role="alert" hidden></p>
//     <button type="submit">Use security key</button>
//   </form>
//
// On submit it posts the form's fields as JSON to data-begin and expects
// {"ceremony": "...", "options": {"publicKey": {...}}}; it calls
// navigator.credentials.create (register) or .get (login, passkey); then it
// posts {...fields, "ceremony": ..., "credential": <PublicKeyCredential JSON>}
// to data-finish. On success it follows "redirect" from the answer, else
// data-redirect, else reloads. Errors ({"error": {"message": ...}}) are shown
// in the data-webauthn-error element, which screen readers announce.
//
// Binary values travel as unpadded base64url, as in the WebAuthn JSON
// serialisation (toJSON / parse*OptionsFromJSON where the browser has them).
(function () {
  "use strict";

  function toBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: toBuf(c.id) });
    });
  }

  function creationOptions(pk) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(pk);
    }
    return Object.assign({}, pk, {
      challenge: toBuf(pk.challenge),
      user: Object.assign({}, pk.user, { id: toBuf(pk.user.id) }),
      excludeCredentials: withIds(pk.excludeCredentials),
    });
  }

  function requestOptions(pk) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(pk);
    }
    return Object.assign({}, pk, {
      challenge: toBuf(pk.challenge),
      allowCredentials: withIds(pk.allowCredentials),
    });
  }

  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") return cred.toJSON();
    var r = cred.response, resp = { clientDataJSON: toB64(r.clientDataJSON) };
    if (r.attestationObject) {
      resp.attestationObject = toB64(r.attestationObject);
      if (typeof r.getTransports === "function") resp.transports = r.getTransports();
    } else {
      resp.authenticatorData = toB64(r.authenticatorData);
      resp.signature = toB64(r.signature);
      if (r.userHandle) resp.userHandle = toB64(r.userHandle);
    }
    return {
      id: cred.id,
      rawId: toB64(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      response: resp,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }

  function fields(form) {
    var out = {};
    new FormData(form).forEach(function (v, k) {
      if (typeof v === "string") out[k] = v;
    });
    form.querySelectorAll("input[type=checkbox][name]").forEach(function (c) {
      out[c.name] = c.checked;
    });
    return out;
  }

  async function post(url, body) {
    var res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    var data = {};
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      var msg = data && data.error && data.error.message;
      throw new Error(msg || "Something went wrong on our side. Please try again in a moment.");
    }
    return data;
  }

  var browserErrors = {
    NotAllowedError: "The request was cancelled or timed out. Try again when your key or device is ready.",
    InvalidStateError: "This security key is already registered to your account.",
    NotSupportedError: "This browser or key does not support what was asked. Try another key or browser.",
    SecurityError: "Security keys only work on this site's secure address.",
  };

  // run performs one ceremony; kind is "register", "login" or "passkey".
  async function run(kind, beginURL, finishURL, extra) {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      throw new Error("This browser cannot use security keys or passkeys. Try another method or browser.");
    }
    var begun = await post(beginURL, extra || {});
    var pk = begun.options.publicKey, cred;
    try {
      cred = kind === "register"
        ? await navigator.credentials.create({ publicKey: creationOptions(pk) })
        : await navigator.credentials.get({ publicKey: requestOptions(pk) });
    } catch (e) {
      throw new Error(browserErrors[e.name] || e.message);
    }
    return post(finishURL, Object.assign({}, extra || {}, {
      ceremony: begun.ceremony,
      credential: credentialJSON(cred),
    }));
  }

  function bind(form) {
    var errBox = form.querySelector("[data-webauthn-error]");
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var button = form.querySelector("[type=submit]");
      if (button) button.disabled = true;
      if (errBox) { errBox.hidden = true; errBox.textContent = ""; }
      try {
        var done = await run(form.dataset.webauthn, form.dataset.begin, form.dataset.finish, fields(form));
        var to = (done && done.redirect) || form.dataset.redirect;
        if (to) window.location.assign(to); else window.location.reload();
      } catch (e) {
        if (errBox) { errBox.textContent = e.message; errBox.hidden = false; }
        if (button) button.disabled = false;
      }
    });
  }

  window.moatWebAuthn = { run: run };
  document.querySelectorAll("form[data-webauthn]").forEach(bind);
})();
