package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"plaza/internal/account"
	"plaza/internal/social"
)

func (s *server) handleMe() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.social.ProfileByID(r.Context(), currentUser(r).ID)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.profileView(p))
	}
}

func (s *server) handleUpdateMe() http.HandlerFunc {
	type request struct {
		Username  *string `json:"username"`
		FirstName *string `json:"first_name"`
		LastName  *string `json:"last_name"`
		Bio       *string `json:"bio"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var req request
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		me := currentUser(r)
		if req.Username != nil && *req.Username != me.Username {
			err := s.accounts.ChangeUsername(r.Context(), me.ID, *req.Username)
			var verr *account.ValidationError
			if errors.As(err, &verr) {
				writeError(w, invalidInput(verr.Fields))
				return
			}
			if err != nil {
				s.fail(w, r, err)
				return
			}
		}
		if err := s.social.UpdateProfile(r.Context(), me.ID, social.ProfileUpdate{FirstName: req.FirstName, LastName: req.LastName, Bio: req.Bio}); err != nil {
			s.domainError(w, r, err)
			return
		}
		s.handleMe()(w, r)
	}
}

func (s *server) handleProfile() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.social.ProfileByUsername(r.Context(), viewerID(r), r.PathValue("username"))
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.profileView(p))
	}
}

func (s *server) handleFollow() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		me := currentUser(r)
		created, err := s.social.Follow(r.Context(), me.ID, r.PathValue("username"))
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		p, err := s.social.ProfileByUsername(r.Context(), me.ID, r.PathValue("username"))
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, s.profileView(p))
	}
}

func (s *server) handleUnfollow() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.social.Unfollow(r.Context(), currentUser(r).ID, r.PathValue("username")); err != nil {
			s.domainError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) handleFollowList(followers bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		list := s.social.Following
		if followers {
			list = s.social.Followers
		}
		items, next, err := list(r.Context(), viewerID(r), r.PathValue("username"), p)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		out := make([]summaryJSON, len(items))
		for i, it := range items {
			out[i] = s.summaryView(it)
		}
		writeJSON(w, http.StatusOK, newPage(out, next))
	}
}

func (s *server) handleUserSearch() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := strings.TrimSpace(r.URL.Query().Get("search"))
		if q == "" || len(q) > 64 {
			writeError(w, invalidInput(map[string][]string{"search": {"Give 1 to 64 characters to search for."}}))
			return
		}
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		items, next, err := s.social.Search(r.Context(), viewerID(r), q, p)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		out := make([]summaryJSON, len(items))
		for i, it := range items {
			out[i] = s.summaryView(it)
		}
		writeJSON(w, http.StatusOK, newPage(out, next))
	}
}

func (s *server) handleSuggestions() http.HandlerFunc {
	type item struct {
		User    summaryJSON `json:"user"`
		Reason  string      `json:"reason"`
		Mutuals int64       `json:"mutuals"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		limit := 10
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				writeError(w, invalidInput(map[string][]string{"limit": {"Expected a positive whole number."}}))
				return
			}
			limit = min(n, social.SuggestionsPerUser)
		}
		list, err := s.social.Suggestions(r.Context(), currentUser(r).ID, limit)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		out := make([]item, len(list))
		for i, sg := range list {
			out[i] = item{User: s.summaryView(sg.User), Reason: sg.Reason, Mutuals: max(sg.Mutuals, 0)}
		}
		writeJSON(w, http.StatusOK, map[string]any{"results": out})
	}
}

func (s *server) handleUserPosts() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		id, err := s.social.UserID(r.Context(), r.PathValue("username"))
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		posts, next, err := s.posts.UserPosts(r.Context(), viewerID(r), id, p)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newPage(s.postsView(r, posts), next))
	}
}

// handleDeleteMe deletes the caller's account after checking the password.
func (s *server) handleDeleteMe() http.HandlerFunc {
	type request struct {
		Password string `json:"password"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var req request
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		if f := required(nil, "password", req.Password); f != nil {
			writeError(w, invalidInput(f))
			return
		}
		err := s.accounts.DeleteUser(r.Context(), currentUser(r).ID, req.Password, true)
		if errors.Is(err, account.ErrBadCredentials) {
			writeError(w, invalidInput(map[string][]string{"password": {"Wrong password."}}))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.clearAuthCookies(w)
		w.WriteHeader(http.StatusNoContent)
	}
}
