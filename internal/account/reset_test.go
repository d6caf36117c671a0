package account_test

import (
	"strings"
	"testing"
	"time"

	"plaza/internal/account"
	"plaza/internal/db/dbtest"
	"plaza/internal/mail"
)

const resetBase = "http://front.test/pages/auth/confirm_password.html"

func TestRequestPasswordResetEnqueuesForKnownAndUnknownAlike(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")

		if err := v.svc.RequestPasswordReset(v.ctx, "  Alice@Example.com "); err != nil {
			t.Fatalf("known email: %v", err)
		}
		if err := v.svc.RequestPasswordReset(v.ctx, "nobody@example.com"); err != nil {
			t.Fatalf("unknown email: %v", err)
		}
		for _, bad := range []string{"", "nobody", "a@b", "Alice <alice@example.com>"} {
			err := v.svc.RequestPasswordReset(v.ctx, bad)
			if f := validationFields(t, err); len(f["email"]) == 0 {
				t.Errorf("RequestPasswordReset(%q): fields %v, want an email error", bad, f)
			}
		}

		rows := v.jobRows(t)
		if len(rows) != 2 {
			t.Fatalf("river_job rows = %+v, want one per valid request", rows)
		}
		for i, want := range []string{"alice@example.com", "nobody@example.com"} {
			if rows[i].Kind != "account.password_reset_mail" || rows[i].Args["email"] != want || len(rows[i].Args) != 1 {
				t.Errorf("job %d = %+v; want kind account.password_reset_mail, args {email: %s}", i, rows[i], want)
			}
		}
		if rows[0].Kind != (account.PasswordResetMailArgs{}).Kind() {
			t.Errorf("kind %q differs from PasswordResetMailArgs.Kind()", rows[0].Kind)
		}
		// The request itself neither mails nor makes a token: the job does.
		if n := len(v.sink.Messages()); n != 0 {
			t.Errorf("%d mails sent by the request itself", n)
		}
		if n := v.count(t, `SELECT count(*) FROM user_tokens`); n != 0 {
			t.Errorf("%d tokens created by the request itself", n)
		}
	})
}

func TestSendPasswordReset(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		alice := v.activeUser(t, "alice@example.com", "alice")
		v.register(t, "inactive@example.com")

		if err := v.svc.SendPasswordReset(v.ctx, "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		m := v.waitMail(t, "alice@example.com", mail.SubjectPasswordReset, 1)
		if m.Subject != "Reset your password" {
			t.Errorf("subject %q", m.Subject)
		}
		uid, token := linkParams(t, m, resetBase)
		if uid != account.EncodeUID(alice.ID) {
			t.Errorf("uid %s, want %s", uid, account.EncodeUID(alice.ID))
		}
		if n := v.count(t, `SELECT count(*) FROM user_tokens WHERE token_hash = ?`, token); n != 0 {
			t.Error("reset token stored in clear")
		}

		// Unknown and inactive addresses: nothing, and no error (the job
		// must not retry).
		before := len(v.sink.Messages())
		for _, email := range []string{"nobody@example.com", "inactive@example.com"} {
			if err := v.svc.SendPasswordReset(v.ctx, email); err != nil {
				t.Errorf("SendPasswordReset(%s) = %v, want nil", email, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if got := len(v.sink.Messages()); got != before {
			t.Errorf("%d mails sent for unknown or inactive addresses", got-before)
		}
		if n := v.count(t, `SELECT count(*) FROM user_tokens WHERE purpose = 'reset'`); n != 1 {
			t.Errorf("%d reset tokens, want 1", n)
		}

		// A mail failure is an error, so that River retries the job.
		v.sink.FailNext(1)
		if err := v.svc.SendPasswordReset(v.ctx, "alice@example.com"); err == nil {
			t.Error("SendPasswordReset hid a mail failure")
		}
	})
}

func TestConfirmPasswordReset(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		bob := v.activeUser(t, "bob@example.com", "bob")
		_, _, actUID, actToken := v.register(t, "carol@example.com")
		alice, s1 := v.session(t, "alice@example.com")
		_, s2 := v.session(t, "alice@example.com")
		_, sBob := v.session(t, "bob@example.com")

		if err := v.svc.SendPasswordReset(v.ctx, "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		uid, token := linkParams(t, v.waitMail(t, "alice@example.com", mail.SubjectPasswordReset, 1), resetBase)
		const newPassword = "a brand new passphrase"

		// Bad links, whatever the passwords.
		for name, c := range map[string][2]string{
			"garbage uid":           {"!!", token},
			"uid of nobody":         {account.EncodeUID(alice.ID + 1000), token},
			"other user's uid":      {account.EncodeUID(bob.ID), token},
			"wrong token":           {uid, token[:len(token)-2] + "xx"},
			"empty token":           {uid, ""},
			"overlong token":        {uid, strings.Repeat("t", 300)},
			"activation token":      {actUID, actToken},
			"activation as alice":   {uid, actToken},
			"raw id instead of b64": {"1", token},
		} {
			err := v.svc.ConfirmPasswordReset(v.ctx, c[0], c[1], newPassword, newPassword)
			wantErr(t, name, err, account.ErrInvalidResetLink)
			err = v.svc.ConfirmPasswordReset(v.ctx, c[0], c[1], "short", "other")
			wantErr(t, name+" with weak password", err, account.ErrInvalidResetLink)
		}
		// The activation link was not consumed by being tried as a reset link.
		if err := v.svc.Activate(v.ctx, actUID, actToken); err != nil {
			t.Fatalf("activation link after reset attempts: %v", err)
		}

		// Weak or mismatched passwords: a validation error, and the link
		// stays usable.
		for _, tc := range []struct{ pw, confirm, field string }{
			{"short", "short", "new_password"},
			{"12345678901", "12345678901", "new_password"},
			{"password123", "password123", "new_password"},
			{newPassword, newPassword + "!", "confirm_password"},
			{"", "", "new_password"},
		} {
			err := v.svc.ConfirmPasswordReset(v.ctx, uid, token, tc.pw, tc.confirm)
			if f := validationFields(t, err); len(f[tc.field]) == 0 {
				t.Errorf("password %q/%q: fields %v, want a %s error", tc.pw, tc.confirm, f, tc.field)
			}
		}
		if _, err := v.svc.Authenticate(v.ctx, "alice@example.com", goodPassword); err != nil {
			t.Fatalf("password changed by a rejected reset: %v", err)
		}

		// Success.
		if err := v.svc.ConfirmPasswordReset(v.ctx, uid, token, newPassword, newPassword); err != nil {
			t.Fatalf("ConfirmPasswordReset: %v", err)
		}
		if _, err := v.svc.Authenticate(v.ctx, "alice@example.com", newPassword); err != nil {
			t.Fatalf("new password: %v", err)
		}
		_, err := v.svc.Authenticate(v.ctx, "alice@example.com", goodPassword)
		wantErr(t, "old password", err, account.ErrBadCredentials)

		// Single use.
		err = v.svc.ConfirmPasswordReset(v.ctx, uid, token, "yet another passphrase", "yet another passphrase")
		wantErr(t, "reused link", err, account.ErrInvalidResetLink)

		// Every session ended: refresh tokens revoked, access tokens dead.
		for name, s := range map[string]account.Session{"first login": s1, "second login": s2} {
			_, err := v.svc.Refresh(v.ctx, s.Refresh, false)
			wantErr(t, name+" refresh", err, account.ErrInvalidToken)
			_, err = v.svc.Refresh(v.ctx, s.Refresh, true)
			wantErr(t, name+" rotate", err, account.ErrInvalidToken)
			_, err = v.svc.UserFromAccessToken(v.ctx, s.Access)
			wantErr(t, name+" access", err, account.ErrInvalidToken)
		}
		// Other users keep theirs; a new login works.
		if _, err := v.svc.UserFromAccessToken(v.ctx, sBob.Access); err != nil {
			t.Fatalf("bob's access token: %v", err)
		}
		if _, err := v.svc.Refresh(v.ctx, sBob.Refresh, false); err != nil {
			t.Fatalf("bob's refresh token: %v", err)
		}
		u, err := v.svc.Authenticate(v.ctx, "alice@example.com", newPassword)
		if err != nil {
			t.Fatal(err)
		}
		s3, err := v.svc.StartSession(v.ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.svc.UserFromAccessToken(v.ctx, s3.Access); err != nil {
			t.Fatalf("access token after reset: %v", err)
		}
		if _, err := v.svc.Refresh(v.ctx, s3.Refresh, true); err != nil {
			t.Fatalf("refresh token after reset: %v", err)
		}
	})
}

func TestPasswordResetLinkExpires(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		v.activeUser(t, "bob@example.com", "bob")
		for _, email := range []string{"alice@example.com", "bob@example.com"} {
			if err := v.svc.SendPasswordReset(v.ctx, email); err != nil {
				t.Fatal(err)
			}
		}
		uidA, tokA := linkParams(t, v.waitMail(t, "alice@example.com", mail.SubjectPasswordReset, 1), resetBase)
		uidB, tokB := linkParams(t, v.waitMail(t, "bob@example.com", mail.SubjectPasswordReset, 1), resetBase)
		const pw = "a brand new passphrase"
		v.clock.Advance(testConfig.ResetTTL - time.Second)
		if err := v.svc.ConfirmPasswordReset(v.ctx, uidA, tokA, pw, pw); err != nil {
			t.Fatalf("reset a second before expiry: %v", err)
		}
		v.clock.Advance(2 * time.Second)
		wantErr(t, "expired reset link", v.svc.ConfirmPasswordReset(v.ctx, uidB, tokB, pw, pw), account.ErrInvalidResetLink)
		if _, err := v.svc.Authenticate(v.ctx, "bob@example.com", goodPassword); err != nil {
			t.Fatalf("bob's password changed by an expired link: %v", err)
		}
	})
}

func TestPasswordResetEndsOtherResetLinks(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")
		for range 2 {
			if err := v.svc.SendPasswordReset(v.ctx, "alice@example.com"); err != nil {
				t.Fatal(err)
			}
		}
		uid1, tok1 := linkParams(t, v.waitMail(t, "alice@example.com", mail.SubjectPasswordReset, 1), resetBase)
		uid2, tok2 := linkParams(t, v.waitMail(t, "alice@example.com", mail.SubjectPasswordReset, 2), resetBase)
		if tok1 == tok2 {
			t.Fatal("two reset mails carry the same token")
		}
		const pw = "a brand new passphrase"
		if err := v.svc.ConfirmPasswordReset(v.ctx, uid2, tok2, pw, pw); err != nil {
			t.Fatal(err)
		}
		// An older link (say, one in a mailbox someone else reads) must
		// not reset the password again once it has been changed.
		err := v.svc.ConfirmPasswordReset(v.ctx, uid1, tok1, "attacker's passphrase", "attacker's passphrase")
		wantErr(t, "older reset link after a reset", err, account.ErrInvalidResetLink)
		if _, err := v.svc.Authenticate(v.ctx, "alice@example.com", pw); err != nil {
			t.Fatalf("password after reset: %v", err)
		}
	})
}
