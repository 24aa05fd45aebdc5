package notify

// The e-mail templates, in one place so that later features add theirs
// here. Each is plain text (text/template; no HTML e-mail, so there is no
// markup to spoof and every client shows the same thing).
//
// Rules every template follows (the tests check them):
//   - It says what happened, what to do next, and gives the one link or code
//     it exists for; it carries no other secret.
//   - Data keys ending in "Link" hold links and must point at the public
//     origin; Enqueue refuses any other value. Every other value is shown as
//     inert text (see cleanText).
//   - Besides its Data keys a template may use {{.Brand}} and {{.Home}} (the
//     public origin followed by "/").
//   - The greeting, the anti-phishing line and the footer are added by the
//     Mailer around the body, so templates do not repeat them.

// Template names.
const (
	TemplateConfirmEmail    = "confirm_email"
	TemplateAccountExists   = "account_exists"
	TemplateNewDeviceCode   = "new_device_code"
	TemplateNewSignIn       = "new_signin"
	TemplateSignInLocked    = "signin_locked"
	TemplateAccountLocked   = "account_locked"
	TemplatePasswordChanged = "password_changed"
	TemplateAntiPhishingSet = "anti_phishing_set"
	TemplateAPIKeyCreated   = "apikey_created"
	TemplateAPIKeyChanged   = "apikey_changed"
	TemplateAPIKeyDeleted   = "apikey_deleted"
	TemplateMFAChanged      = "mfa_changed"
	TemplateMFAOff          = "mfa_off"

	// Recovery (issue 5): password reset and lost-2FA recovery cases.
	TemplatePasswordReset     = "password_reset"
	TemplatePasswordResetDone = "password_reset_done"
	TemplateRecoveryRequested = "recovery_requested"
	TemplateRecoveryApproved  = "recovery_approved"
	TemplateRecoveryReminder  = "recovery_reminder"
	TemplateRecoveryCancelled = "recovery_cancelled"
	TemplateRecoveryRejected  = "recovery_rejected"
	TemplateRecoveryCompleted = "recovery_completed"
)

// templateSpec is one message: its subject and body templates and the Data
// keys it needs (required) or may use (optional; absent means "").
type templateSpec struct {
	subject  string
	body     string
	required []string
	optional []string
}

// templateSpecs is read-only after package initialisation.
var templateSpecs = map[string]templateSpec{
	TemplateConfirmEmail: {
		subject:  `Confirm your e-mail address for {{.Brand}}`,
		required: []string{"Link"},
		body: `
Someone, hopefully you, created a {{.Brand}} account with this e-mail address.

To finish signing up, confirm your address by opening this link:

{{.Link}}

The link works once and expires soon. If it has expired, sign in and ask for a new one.

If you did not sign up, you can ignore this e-mail: without the link the address is not confirmed.
`,
	},

	TemplateAccountExists: {
		subject:  `Someone tried to sign up to {{.Brand}} with your e-mail address`,
		required: []string{"Link"},
		body: `
Someone tried to create a new {{.Brand}} account with this e-mail address, but you already have one. Nothing about your account has changed.

If it was you, sign in to your existing account instead:

{{.Link}}

If it was not you, you can ignore this e-mail.
`,
	},

	TemplateNewDeviceCode: {
		subject:  `Approve a sign-in to {{.Brand}} from a new device`,
		required: []string{"Code", "Link", "SecureLink", "IP", "Device", "Time"},
		body: `
Your password was just used to sign in to {{.Brand}} from a device we have not seen before:

  Device:     {{.Device}}
  IP address: {{.IP}}
  Time:       {{.Time}}

If this was you, enter this code on the sign-in page:

  {{.Code}}

or approve the device by opening this link:

{{.Link}}

The code and the link work once and expire in a few minutes. Never give this code to anyone, including anyone who says they work for {{.Brand}}.

Wasn't you? Then someone knows your password. Secure your account now: this signs out every session and locks the account so nobody can sign in.

{{.SecureLink}}
`,
	},

	TemplateNewSignIn: {
		subject:  `New sign-in to your {{.Brand}} account`,
		required: []string{"IP", "Device", "Time", "SecureLink"},
		body: `
Your {{.Brand}} account was just signed in to:

  Device:     {{.Device}}
  IP address: {{.IP}}
  Time:       {{.Time}}

If this was you, there is nothing to do.

If it was not you, someone has your password and your second factor. Secure your account now: this signs out every session and locks the account so nobody can sign in.

{{.SecureLink}}
`,
	},

	TemplateSignInLocked: {
		subject:  `Signing in to your {{.Brand}} account is paused`,
		required: []string{"Until", "IP"},
		optional: []string{"SecureLink"},
		body: `
There were too many failed attempts to sign in to your {{.Brand}} account, the most recent from IP address {{.IP}}. To protect your account, signing in is paused until {{.Until}}.

If it was you, wait until then and try again at {{.Home}}

If it was not you, the attempts failed and your account is safe. Make sure your password is not used anywhere else, and turn on two-step verification if you have not already.
{{- if .SecureLink}}

If you think someone knows your password, secure your account now: this signs out every session and locks the account so nobody can sign in.

{{.SecureLink}}
{{- end}}
`,
	},

	TemplateAccountLocked: {
		subject: `Your {{.Brand}} account is locked`,
		body: `
Your {{.Brand}} account was locked with the "secure my account" link from one of our e-mails. Every session has been signed out, and nobody can sign in until the account is unlocked.

To get back in, contact {{.Brand}} support from this e-mail address: they will check that it is you and unlock the account. Then choose a new password that you do not use anywhere else.

If you did not lock your account, contact support too.
`,
	},

	TemplatePasswordChanged: {
		subject:  `Your {{.Brand}} password was changed`,
		required: []string{"Time", "IP", "SecureLink"},
		body: `
The password of your {{.Brand}} account was changed:

  Time:       {{.Time}}
  IP address: {{.IP}}

If this was you, there is nothing to do. As a precaution, withdrawals are paused for a while after a password change.

If it was not you, secure your account now: this signs out every session and locks the account so nobody can sign in.

{{.SecureLink}}
`,
	},

	TemplateAntiPhishingSet: {
		subject: `Your {{.Brand}} anti-phishing code is set`,
		body: `
You set an anti-phishing code for your {{.Brand}} account. From now on it appears at the top of every e-mail we send you, like this one.

If an e-mail that claims to come from {{.Brand}} does not show your code, or shows a different one, it is not from us: do not open its links and do not reply.

If you did not set this code, sign in at {{.Home}} and check your security settings: someone may have access to your account.
`,
	},

	// API keys (internal/apikey). From says who made the change: "IP
	// address 203.0.113.9" for the owner's session, or the operator's
	// command line. The secret itself is never in an e-mail.
	TemplateAPIKeyCreated: {
		subject:  `A new API key was created on your {{.Brand}} account`,
		required: []string{"Name", "Permissions", "AllowedIPs", "Expires", "From", "Time", "KeysLink", "SecureLink"},
		optional: []string{"Warning"},
		body: `
An API key was created on your {{.Brand}} account. Programs holding it can act on your account with these permissions:

  Name:        {{.Name}}
  Permissions: {{.Permissions}}
  Allowed IPs: {{.AllowedIPs}}
  Expires:     {{.Expires}}
  From:        {{.From}}
  Time:        {{.Time}}
{{- if .Warning}}

{{.Warning}}
{{- end}}

If this was you, keep the key's secret in a secret manager: it was shown once and cannot be shown again. You can review, change and delete your keys here:

{{.KeysLink}}

If it was not you, someone has access to your account. Secure your account now: this signs out every session, locks the account so nobody can sign in, and stops every API key from working.

{{.SecureLink}}
`,
	},

	TemplateAPIKeyChanged: {
		subject:  `An API key on your {{.Brand}} account was changed`,
		required: []string{"Name", "Change", "From", "Time", "KeysLink", "SecureLink"},
		body: `
The API key "{{.Name}}" on your {{.Brand}} account was changed:

  Change: {{.Change}}
  From:   {{.From}}
  Time:   {{.Time}}

If this was you, there is nothing to do. You can review your keys here:

{{.KeysLink}}

If it was not you, someone has access to your account. Secure your account now: this signs out every session, locks the account so nobody can sign in, and stops every API key from working.

{{.SecureLink}}
`,
	},

	TemplateAPIKeyDeleted: {
		subject:  `An API key on your {{.Brand}} account was deleted`,
		required: []string{"Name", "From", "Time", "KeysLink", "SecureLink"},
		body: `
The API key "{{.Name}}" on your {{.Brand}} account was deleted. Programs using it can no longer reach your account with it.

  From: {{.From}}
  Time: {{.Time}}

If this was you, there is nothing to do. You can review your remaining keys here:

{{.KeysLink}}

If it was not you, someone has access to your account. Secure your account now: this signs out every session, locks the account so nobody can sign in, and stops every API key from working.

{{.SecureLink}}
`,
	},

	// Two-factor authentication (internal/mfa, through the server's
	// recorder). Summary or Change says what happened in one sentence
	// ("A security key named “YubiKey” was added to your account.");
	// HoldUntil is set when the change paused withdrawals.
	TemplateMFAChanged: {
		subject:  `Two-factor authentication on your {{.Brand}} account changed`,
		required: []string{"Summary", "Time", "IP", "SecurityLink", "SecureLink"},
		optional: []string{"HoldUntil"},
		body: `
{{.Summary}}

  Time:       {{.Time}}
  IP address: {{.IP}}
{{- if .HoldUntil}}

As a precaution, withdrawals are paused until {{.HoldUntil}}, so that whoever made this change cannot take money out straight away.
{{- end}}

If this was you, there is nothing to do. You can review your two-factor methods here:

{{.SecurityLink}}

If it was not you, someone has access to your account. Secure your account now: this signs out every session and locks the account so nobody can sign in.

{{.SecureLink}}
`,
	},

	// The last second factor was removed: stronger words than
	// mfa_changed, because the password alone now opens the account.
	TemplateMFAOff: {
		subject:  `Two-factor authentication is now OFF on your {{.Brand}} account`,
		required: []string{"Change", "Time", "IP", "SecurityLink", "SecureLink"},
		optional: []string{"HoldUntil"},
		body: `
{{.Change}} That was the last one: your {{.Brand}} account no longer has two-factor authentication.

  Time:       {{.Time}}
  IP address: {{.IP}}

From now on your password alone is enough to sign in. Anyone who learns it (from a data breach at another site, a phishing page or malware) can sign in as you and reach your money.
{{- if .HoldUntil}}

As a precaution, withdrawals are paused until {{.HoldUntil}}.
{{- end}}

If this was you, set up an authenticator app or a security key again as soon as you can:

{{.SecurityLink}}

If it was NOT you, someone has your password and was signed in to your account. Secure your account now: this signs out every session and locks the account so nobody can sign in. Then contact support.

{{.SecureLink}}
`,
	},

	TemplatePasswordReset: {
		subject:  `Reset your {{.Brand}} password`,
		required: []string{"Link", "Time", "IP"},
		body: `
Someone, hopefully you, asked to reset the password of your {{.Brand}} account:

  Time:       {{.Time}}
  IP address: {{.IP}}

To choose a new password, open this link:

{{.Link}}

The link works once and expires in 30 minutes. Asking again voids this link. If your account has two-factor authentication, you will also need your authenticator, security key or a backup code.

If you did not ask for this, ignore this e-mail: your password has not changed and nobody can change it without this link.
`,
	},

	TemplatePasswordResetDone: {
		subject:  `Your {{.Brand}} password was reset`,
		required: []string{"Time", "IP", "SecureLink", "HoldUntil"},
		body: `
The password of your {{.Brand}} account was reset with a link we e-mailed to you:

  Time:       {{.Time}}
  IP address: {{.IP}}

Every session was signed out and every other reset link was voided. As a precaution, withdrawals are paused until {{.HoldUntil}}.

If this was you, sign in with your new password and review your recent activity and your two-factor methods.

If it was NOT you, someone can read your e-mail. Secure your account now: this signs out every session and locks the account so nobody can sign in. Then secure your e-mail account and contact support.

{{.SecureLink}}
`,
	},

	TemplateRecoveryRequested: {
		subject:  `Someone asked to recover your {{.Brand}} account`,
		required: []string{"Reference", "Time", "IP", "CancelLink"},
		body: `
Someone asked to recover access to your {{.Brand}} account because they say they lost their two-factor authentication:

  Reference:  {{.Reference}}
  Time:       {{.Time}}
  IP address: {{.IP}}

Support staff will check the identity document and answers they sent. If two staff members approve, a waiting period starts, and only when it ends are the two-factor methods removed. We will e-mail you at each step.

If this was you, there is nothing to do now.

If it was NOT you, someone knows your password or can read your e-mail. Cancel the request now:

{{.CancelLink}}

Then change your password and contact support.
`,
	},

	TemplateRecoveryApproved: {
		subject:  `Your {{.Brand}} account will be recovered on {{.WaitUntil}} unless you cancel`,
		required: []string{"Reference", "WaitUntil", "CancelLink"},
		body: `
Support staff approved the request to recover your {{.Brand}} account:

  Reference: {{.Reference}}

The waiting period has started. On {{.WaitUntil}} the account's two-factor methods will be removed so that the person who asked can sign in and set up new ones. Withdrawals will then stay paused for 7 days.

If this was you, there is nothing to do: wait, then sign in and set up a new second factor.

If it was NOT you, cancel now. Signing in with your current second factor cancels it too.

{{.CancelLink}}
`,
	},

	TemplateRecoveryReminder: {
		subject:  `Reminder: your {{.Brand}} account will be recovered on {{.WaitUntil}}`,
		required: []string{"Reference", "WaitUntil", "CancelLink"},
		body: `
A request to recover your {{.Brand}} account is in its waiting period:

  Reference: {{.Reference}}

On {{.WaitUntil}} the account's two-factor methods will be removed so that the person who asked can sign in and set up new ones.

If this was you, there is nothing to do.

If it was NOT you, cancel now. Signing in with your current second factor cancels it too.

{{.CancelLink}}
`,
	},

	TemplateRecoveryCancelled: {
		subject:  `The recovery of your {{.Brand}} account was cancelled`,
		required: []string{"Reference", "How"},
		body: `
The request to recover your {{.Brand}} account was cancelled:

  Reference: {{.Reference}}
  How:       {{.How}}

Nothing about your account changed: your password and two-factor methods are as they were.

If you still cannot sign in, you can open a new request from the sign-in page.
`,
	},

	TemplateRecoveryRejected: {
		subject:  `We could not approve the recovery of your {{.Brand}} account`,
		required: []string{"Reference", "Reason", "Link"},
		body: `
Support staff could not approve the request to recover your {{.Brand}} account:

  Reference: {{.Reference}}
  Reason:    {{.Reason}}

Nothing about your account changed. If you still cannot sign in, you can open a new request with what the reason asks for, starting from the sign-in page:

{{.Link}}

If you did not ask to recover your account, there is nothing to do.
`,
	},

	TemplateRecoveryCompleted: {
		subject:  `Your {{.Brand}} account was recovered`,
		required: []string{"Reference", "HoldUntil", "SignInLink"},
		body: `
The waiting period of the request to recover your {{.Brand}} account has ended and the account's two-factor methods were removed:

  Reference: {{.Reference}}

Sign in with your password and set up a new second factor; you will be asked to before anything else. Withdrawals stay paused until {{.HoldUntil}}.

{{.SignInLink}}

If you did not ask for this, secure your e-mail account and contact support at once.
`,
	},
}
