package account_test

import (
	"errors"
	"testing"

	"plaza/internal/account"
	"plaza/internal/db/dbtest"
)

// TestUserCacheFollowsChanges: the user behind an access token is cached,
// but a change made through the service is seen by the very next request,
// and a change made behind its back (another process) once forgotten.
func TestUserCacheFollowsChanges(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, e dbtest.Engine) {
		v := newEnv(t, e)
		v.activeUser(t, "cache@example.com", "cached")
		u, s := v.session(t, "cache@example.com")
		if got, err := v.svc.UserFromAccessToken(v.ctx, s.Access); err != nil || got.Username != "cached" {
			t.Fatalf("UserFromAccessToken = %q, %v", got.Username, err)
		}
		if err := v.svc.ChangeUsername(v.ctx, u.ID, "renamed"); err != nil {
			t.Fatal(err)
		}
		if got, _ := v.svc.UserFromAccessToken(v.ctx, s.Access); got.Username != "renamed" {
			t.Fatalf("username after rename = %q, want renamed", got.Username)
		}

		// Another process (the CLI) grants staff: this instance sees it
		// when told (the broker) or when the entry expires.
		if err := v.svc.Store().SetStaff(v.ctx, u.ID, true); err != nil {
			t.Fatal(err)
		}
		if got, _ := v.svc.UserFromAccessToken(v.ctx, s.Access); got.IsStaff {
			t.Fatal("expected the cached (not yet staff) user before invalidation")
		}
		v.svc.ForgetUser(u.ID)
		if got, _ := v.svc.UserFromAccessToken(v.ctx, s.Access); !got.IsStaff {
			t.Fatal("still not staff after ForgetUser")
		}

		if err := v.svc.DeleteUser(v.ctx, u.ID, "", false); err != nil {
			t.Fatal(err)
		}
		if _, err := v.svc.UserFromAccessToken(v.ctx, s.Access); !errors.Is(err, account.ErrInvalidToken) {
			t.Fatalf("token of a deleted user: err = %v, want ErrInvalidToken", err)
		}
	})
}
