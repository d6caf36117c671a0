package account_test

import (
	"errors"
	"testing"
	"time"

	"plaza/internal/account"
	"plaza/internal/db"
	"plaza/internal/db/dbtest"
)

func TestCreateUser(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		admin, err := v.svc.CreateUser(v.ctx, " Admin@Example.com", goodPassword, "root_admin", true)
		if err != nil {
			t.Fatal(err)
		}
		if !admin.IsActive || !admin.IsStaff || admin.Email != "admin@example.com" || admin.Username != "root_admin" {
			t.Fatalf("CreateUser = %+v; want an active staff admin@example.com", admin)
		}
		plain, err := v.svc.CreateUser(v.ctx, "plain@example.com", goodPassword, "", false)
		if err != nil {
			t.Fatal(err)
		}
		if !plain.IsActive || plain.IsStaff || plain.Username != "plain" {
			t.Fatalf("CreateUser = %+v; want an active non-staff user named plain", plain)
		}
		// Usable at once, without any mail.
		for _, email := range []string{"admin@example.com", "plain@example.com"} {
			if _, err := v.svc.Authenticate(v.ctx, email, goodPassword); err != nil {
				t.Fatalf("Authenticate(%s): %v", email, err)
			}
		}
		if n := len(v.sink.Messages()); n != 0 {
			t.Fatalf("CreateUser sent %d mails", n)
		}
		stored, err := v.svc.Store().UserByID(v.ctx, admin.ID)
		if err != nil || !stored.IsStaff || !stored.IsActive {
			t.Fatalf("stored admin = %+v, %v", stored, err)
		}

		_, err = v.svc.CreateUser(v.ctx, "ADMIN@example.com", "another good one", "someone", false)
		wantErr(t, "duplicate email", err, account.ErrEmailTaken)
		_, err = v.svc.CreateUser(v.ctx, "new@example.com", goodPassword, "ROOT_ADMIN", false)
		if f := validationFields(t, err); len(f["username"]) == 0 {
			t.Errorf("duplicate username: fields %v", f)
		}
		_, err = v.svc.CreateUser(v.ctx, "not an email", goodPassword, "", false)
		if f := validationFields(t, err); len(f["email"]) == 0 {
			t.Errorf("invalid email: fields %v", f)
		}
		_, err = v.svc.CreateUser(v.ctx, "weak@example.com", "12345678", "", false)
		if f := validationFields(t, err); len(f["password"]) == 0 {
			t.Errorf("weak password: fields %v", f)
		}
		if n := v.count(t, `SELECT count(*) FROM users`); n != 2 {
			t.Fatalf("%d users, want 2", n)
		}

		// Staff rights change through the store.
		if err := v.svc.Store().SetStaff(v.ctx, plain.ID, true); err != nil {
			t.Fatal(err)
		}
		if u, _ := v.svc.Store().UserByID(v.ctx, plain.ID); !u.IsStaff {
			t.Fatal("SetStaff(true) did not stick")
		}
		if err := v.svc.Store().SetStaff(v.ctx, admin.ID, false); err != nil {
			t.Fatal(err)
		}
		if u, _ := v.svc.Store().UserByID(v.ctx, admin.ID); u.IsStaff {
			t.Fatal("SetStaff(false) did not stick")
		}
		if err := v.svc.Store().SetStaff(v.ctx, plain.ID+1000, true); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("SetStaff(unknown) = %v, want db.ErrNotFound", err)
		}
	})
}

func TestPurgeExpiredTokens(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "alice@example.com", "alice")

		_, sA := v.session(t, "alice@example.com")   // refresh, expires t0+7d
		_, _, uidB, tokB := v.register(t, "b@x.com") // activation, expires t0+1d
		_, _, uidC, tokC := v.register(t, "c@x.com") // activation, used before it expires
		if err := v.svc.Activate(v.ctx, uidC, tokC); err != nil {
			t.Fatal(err)
		}

		if n, err := v.svc.PurgeExpiredTokens(v.ctx); err != nil || n != 0 {
			t.Fatalf("purge with nothing expired = %d, %v", n, err)
		}

		v.clock.Advance(2 * 24 * time.Hour)
		_, sC := v.session(t, "alice@example.com") // refresh, expires t0+9d
		if err := v.svc.SendPasswordReset(v.ctx, "alice@example.com"); err != nil {
			t.Fatal(err) // reset, expires t0+2d+1h
		}

		// Only the two activation tokens (expired at t0+1d) go.
		n, err := v.svc.PurgeExpiredTokens(v.ctx)
		if err != nil || n != 2 {
			t.Fatalf("purge at t0+2d = %d, %v; want 2", n, err)
		}
		if got := v.count(t, `SELECT count(*) FROM user_tokens`); got != 1 {
			t.Fatalf("%d one-time tokens left, want the reset token", got)
		}
		if got := v.count(t, `SELECT count(*) FROM refresh_tokens`); got != 2 {
			t.Fatalf("%d refresh tokens left, want 2", got)
		}
		wantErr(t, "purged activation link", v.svc.Activate(v.ctx, uidB, tokB), account.ErrActivationFailed)
		if _, err := v.svc.Refresh(v.ctx, sA.Refresh, false); err != nil {
			t.Fatalf("unexpired refresh token purged: %v", err)
		}

		v.clock.Advance(6 * 24 * time.Hour) // t0+8d
		n, err = v.svc.PurgeExpiredTokens(v.ctx)
		if err != nil || n != 2 {
			t.Fatalf("purge at t0+8d = %d, %v; want 2 (first refresh token, reset token)", n, err)
		}
		if got := v.count(t, `SELECT count(*) FROM user_tokens`) + v.count(t, `SELECT count(*) FROM refresh_tokens`); got != 1 {
			t.Fatalf("%d tokens left, want 1", got)
		}
		if _, err := v.svc.Refresh(v.ctx, sC.Refresh, false); err != nil {
			t.Fatalf("unexpired refresh token purged: %v", err)
		}
		if n, err := v.svc.PurgeExpiredTokens(v.ctx); err != nil || n != 0 {
			t.Fatalf("second purge = %d, %v; want 0", n, err)
		}
	})
}
