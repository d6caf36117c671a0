package account_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"plaza/internal/account"
	"plaza/internal/db"
	"plaza/internal/db/dbtest"
	"plaza/internal/mail"
)

func TestRegisterCreatesInactiveUserAndMailsActivationLink(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		u, token, err := v.svc.Register(v.ctx, account.RegisterInput{
			Email: "  Alice@Example.COM ", Password: goodPassword, ConfirmedPassword: goodPassword, Username: "Alice_W",
		})
		if err != nil {
			t.Fatal(err)
		}
		if u.ID <= 0 || u.Email != "alice@example.com" || u.Username != "Alice_W" || u.IsActive || u.IsStaff {
			t.Fatalf("registered user = %+v; want a new inactive, non-staff alice@example.com named Alice_W", u)
		}
		stored, err := v.svc.Store().UserByEmail(v.ctx, "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if stored.ID != u.ID || stored.IsActive {
			t.Fatalf("stored user = %+v", stored)
		}
		if strings.Contains(stored.PasswordHash, goodPassword) || !strings.HasPrefix(stored.PasswordHash, "$argon2id$") {
			t.Fatalf("password stored as %q", stored.PasswordHash)
		}

		m := v.waitMail(t, "alice@example.com", mail.SubjectActivation, 1)
		if m.Subject != "Confirm your email" {
			t.Errorf("subject = %q", m.Subject)
		}
		if m.From != "no-reply@example.com" {
			t.Errorf("envelope sender = %q", m.From)
		}
		uid, tok := linkParams(t, m, "http://front.test/pages/auth/activate.html")
		if uid != account.EncodeUID(u.ID) || tok != token {
			t.Fatalf("link carries uid=%s token=%s; want uid=%s and the token Register returned (%s)", uid, tok, account.EncodeUID(u.ID), token)
		}
		// The database holds no usable form of the token.
		if n := v.count(t, `SELECT count(*) FROM user_tokens WHERE token_hash = ?`, token); n != 0 {
			t.Fatal("activation token stored in clear")
		}

		// Inactive users cannot log in; the link activates them.
		_, err = v.svc.Authenticate(v.ctx, "alice@example.com", goodPassword)
		wantErr(t, "Authenticate before activation", err, account.ErrBadCredentials)
		if err := v.svc.Activate(v.ctx, uid, tok); err != nil {
			t.Fatalf("Activate: %v", err)
		}
		if _, err := v.svc.Authenticate(v.ctx, "alice@example.com", goodPassword); err != nil {
			t.Fatalf("Authenticate after activation: %v", err)
		}
	})
}

func TestRegisterTakenEmailAnswersLikeInvalidEmail(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.register(t, "taken@example.com")

		_, _, errTaken := v.svc.Register(v.ctx, account.RegisterInput{
			Email: " TAKEN@example.com", Password: "another good one", ConfirmedPassword: "another good one",
		})
		_, _, errInvalid := v.svc.Register(v.ctx, account.RegisterInput{
			Email: "not-an-email", Password: "another good one", ConfirmedPassword: "another good one",
		})
		taken, invalid := validationFields(t, errTaken), validationFields(t, errInvalid)
		if len(taken) == 0 || !reflect.DeepEqual(taken, invalid) {
			t.Fatalf("taken email answers %v, invalid email %v; they must be identical", taken, invalid)
		}
		if errTaken.Error() != errInvalid.Error() {
			t.Fatalf("messages differ: %q vs %q", errTaken, errInvalid)
		}
		if n := v.count(t, `SELECT count(*) FROM users`); n != 1 {
			t.Fatalf("%d users, want 1", n)
		}
		if n := len(v.mails("taken@example.com", mail.SubjectActivation)); n != 1 {
			t.Fatalf("%d activation mails to the taken address, want 1", n)
		}
	})
}

func TestRegisterTakenUsername(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		in := account.RegisterInput{Email: "first@example.com", Password: goodPassword, ConfirmedPassword: goodPassword, Username: "Alice"}
		if _, _, err := v.svc.Register(v.ctx, in); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"Alice", "alice", "ALICE"} {
			in := account.RegisterInput{Email: "other-" + name + "@example.com", Password: goodPassword, ConfirmedPassword: goodPassword, Username: name}
			_, _, err := v.svc.Register(v.ctx, in)
			f := validationFields(t, err)
			if len(f["username"]) == 0 || f["email"] != nil {
				t.Errorf("username %q: fields = %v; want a username error only", name, f)
			}
		}
		if exists, err := v.svc.Store().UsernameExists(v.ctx, "aLiCe"); err != nil || !exists {
			t.Errorf("UsernameExists(aLiCe) = %v, %v", exists, err)
		}
		if n := v.count(t, `SELECT count(*) FROM users`); n != 1 {
			t.Fatalf("%d users, want 1", n)
		}
	})
}

func TestRegisterDerivesUniqueUsernames(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		seen := map[string]string{}
		for _, email := range []string{
			"a@x.com", "a@y.com", "A@z.org",
			"bob.smith@x.com", "bob.smith@y.com",
			"carol+news@x.com", "carol@y.com",
			"12345@x.com", "12345@y.com",
			// 27 digits: the derived name must stay a valid username (at
			// most 30 characters, not only digits) with a suffix too.
			"123456789012345678901234567@x.com", "123456789012345678901234567@y.com",
			strings.Repeat("d", 40) + "@x.com", strings.Repeat("d", 40) + "@y.com",
		} {
			u, _, _, _ := v.register(t, email)
			if !account.ValidUsername(u.Username) {
				t.Errorf("%s: derived username %q (%d chars) is not a valid username", email, u.Username, len(u.Username))
			}
			if prev, dup := seen[strings.ToLower(u.Username)]; dup {
				t.Errorf("%s and %s both got username %q", prev, email, u.Username)
			}
			seen[strings.ToLower(u.Username)] = email
			if strings.Contains(u.Username, "news") {
				t.Errorf("%s: username %q leaks the sub-address tag", email, u.Username)
			}
		}
		if _, ok := seen["a__"]; !ok {
			t.Errorf("first a@ user should get the plain derived name a__; got %v", seen)
		}
	})
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		for _, tc := range []struct {
			name  string
			in    account.RegisterInput
			field string
			msg   string // part of the message expected for field
		}{
			{"mismatch", account.RegisterInput{Email: "m@example.com", Password: goodPassword, ConfirmedPassword: goodPassword + "!"}, "confirmed_password", "do not match"},
			{"bad username", account.RegisterInput{Email: "m@example.com", Password: goodPassword, ConfirmedPassword: goodPassword, Username: "no spaces"}, "username", "letters"},
			{"digit username", account.RegisterInput{Email: "m@example.com", Password: goodPassword, ConfirmedPassword: goodPassword, Username: "12345"}, "username", "not only digits"},
			{"short", account.RegisterInput{Email: "m@example.com", Password: "Xy7!abc", ConfirmedPassword: "Xy7!abc"}, "password", "too short"},
			{"empty", account.RegisterInput{Email: "m@example.com"}, "password", "too short"},
			{"all digits", account.RegisterInput{Email: "m@example.com", Password: "4829163057", ConfirmedPassword: "4829163057"}, "password", "entirely numeric"},
			{"common", account.RegisterInput{Email: "m@example.com", Password: "password123", ConfirmedPassword: "password123"}, "password", "too common"},
			{"common any case", account.RegisterInput{Email: "m@example.com", Password: "PassWord123", ConfirmedPassword: "PassWord123"}, "password", "too common"},
			{"common digits", account.RegisterInput{Email: "m@example.com", Password: "12345678", ConfirmedPassword: "12345678"}, "password", "too common"},
			{"email local part", account.RegisterInput{Email: "johnsmith@example.com", Password: "JohnSmith", ConfirmedPassword: "JohnSmith"}, "password", "too similar"},
			{"username", account.RegisterInput{Email: "jo@example.com", Password: "superman99", ConfirmedPassword: "superman99", Username: "SuperMan99"}, "password", "too similar"},
			{"too long", account.RegisterInput{Email: "m@example.com", Password: strings.Repeat("ab", 513), ConfirmedPassword: strings.Repeat("ab", 513)}, "password", "too long"},
		} {
			_, _, err := v.svc.Register(v.ctx, tc.in)
			f := validationFields(t, err)
			if !strings.Contains(strings.Join(f[tc.field], " | "), tc.msg) {
				t.Errorf("%s: fields = %v; want %q under %s", tc.name, f, tc.msg, tc.field)
			}
		}
		// The input errors are reported together.
		_, _, err := v.svc.Register(v.ctx, account.RegisterInput{Email: "nope", Password: "1234", ConfirmedPassword: "4321", Username: "x"})
		f := validationFields(t, err)
		for _, k := range []string{"email", "password", "confirmed_password", "username"} {
			if len(f[k]) == 0 {
				t.Errorf("all-wrong input: no %s error in %v", k, f)
			}
		}
		if n := v.count(t, `SELECT count(*) FROM users`); n != 0 {
			t.Fatalf("%d users stored by invalid registrations", n)
		}
		if n := len(v.sink.Messages()); n != 0 {
			t.Fatalf("%d mails sent for invalid registrations", n)
		}
		// A good password that happens to be close to nothing is fine.
		if _, _, err := v.svc.Register(v.ctx, account.RegisterInput{Email: "ok@example.com", Password: "Tr0ub4dor&3x", ConfirmedPassword: "Tr0ub4dor&3x"}); err != nil {
			t.Fatalf("good registration: %v", err)
		}
	})
}

func TestRegisterMailFailureRemovesUser(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.sink.FailNext(1)
		in := account.RegisterInput{Email: "unlucky@example.com", Password: goodPassword, ConfirmedPassword: goodPassword, Username: "unlucky"}
		_, _, err := v.svc.Register(v.ctx, in)
		wantErr(t, "Register with failing mail", err, account.ErrMailUnavailable)
		if _, err := v.svc.Store().UserByEmail(v.ctx, "unlucky@example.com"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("user kept after failed mail: %v", err)
		}
		if n := v.count(t, `SELECT count(*) FROM user_tokens`); n != 0 {
			t.Fatalf("%d activation tokens kept after failed mail", n)
		}
		// Email and username are free again.
		u, _, err := v.svc.Register(v.ctx, in)
		if err != nil {
			t.Fatalf("second registration: %v", err)
		}
		m := v.waitMail(t, "unlucky@example.com", mail.SubjectActivation, 1)
		uid, tok := linkParams(t, m, "http://front.test/pages/auth/activate.html")
		if uid != account.EncodeUID(u.ID) {
			t.Fatalf("uid %s, want %s", uid, account.EncodeUID(u.ID))
		}
		if err := v.svc.Activate(v.ctx, uid, tok); err != nil {
			t.Fatalf("Activate: %v", err)
		}
	})
}

func TestActivate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		alice, _, uidA, tokA := v.register(t, "alice@example.com")
		_, _, uidB, tokB := v.register(t, "bob@example.com")

		isActive := func(id int64) bool {
			u, err := v.svc.Store().UserByID(v.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return u.IsActive
		}
		for name, c := range map[string][2]string{
			"wrong token":            {uidA, tokA[:len(tokA)-1] + "x"},
			"other user's token":     {uidA, tokB},
			"token for another uid":  {uidB, tokA},
			"uid of nobody":          {account.EncodeUID(alice.ID + 1000), tokA},
			"garbage uid":            {"!!", tokA},
			"raw id instead of b64":  {"1", tokA},
			"empty token":            {uidA, ""},
			"overlong token":         {uidA, strings.Repeat("a", 300)},
			"token hash not a token": {uidA, strings.Repeat("0", 64)},
		} {
			err := v.svc.Activate(v.ctx, c[0], c[1])
			wantErr(t, name, err, account.ErrActivationFailed)
		}
		if isActive(alice.ID) {
			t.Fatal("alice active after failed attempts")
		}

		if err := v.svc.Activate(v.ctx, uidA, tokA); err != nil {
			t.Fatalf("Activate: %v", err)
		}
		if !isActive(alice.ID) {
			t.Fatal("alice not active")
		}
		wantErr(t, "second activation", v.svc.Activate(v.ctx, uidA, tokA), account.ErrActivationFailed)

		// Expiry: a link works until ActivationTTL has passed, not after.
		carol, _, uidC, tokC := v.register(t, "carol@example.com")
		dave, _, uidD, tokD := v.register(t, "dave@example.com")
		v.clock.Advance(testConfig.ActivationTTL - time.Second)
		if err := v.svc.Activate(v.ctx, uidC, tokC); err != nil {
			t.Fatalf("Activate just before expiry: %v", err)
		}
		v.clock.Advance(2 * time.Second)
		wantErr(t, "expired activation", v.svc.Activate(v.ctx, uidD, tokD), account.ErrActivationFailed)
		if !isActive(carol.ID) || isActive(dave.ID) {
			t.Fatal("wrong activation state after expiry")
		}
	})
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		alice := v.activeUser(t, "alice@example.com", "alice")
		v.register(t, "inactive@example.com")

		u, err := v.svc.Authenticate(v.ctx, "  ALICE@example.com", goodPassword)
		if err != nil || u.ID != alice.ID {
			t.Fatalf("Authenticate = %+v, %v", u, err)
		}
		stored, err := v.svc.Store().UserByID(v.ctx, alice.ID)
		if err != nil || !stored.LastLoginAt.Valid {
			t.Fatalf("last login not recorded: %+v, %v", stored, err)
		}

		for name, c := range map[string][2]string{
			"wrong password":    {"alice@example.com", goodPassword + "x"},
			"empty password":    {"alice@example.com", ""},
			"unknown email":     {"nobody@example.com", goodPassword},
			"malformed email":   {"alice", goodPassword},
			"empty email":       {"", ""},
			"inactive user":     {"inactive@example.com", goodPassword},
			"username as email": {"alice", goodPassword},
		} {
			_, err := v.svc.Authenticate(v.ctx, c[0], c[1])
			wantErr(t, name, err, account.ErrBadCredentials)
		}
	})
}
