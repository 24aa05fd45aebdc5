package webauthn

import _ "embed"

// Script is the browser side of the ceremonies (static/webauthn.js): serve
// it from the binary (e.g. /static/webauthn.js) and load it with defer on
// pages that have a form with a data-webauthn attribute. It posts JSON with
// Content-Type application/json, so it passes the API's cross-origin
// protection, and sends {ceremony, credential} exactly as mfa.KeyResponse
// reads it.
//
//go:embed static/webauthn.js
var Script string
