package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"plaza/internal/live"
	"plaza/internal/page"
)

func (s *server) liveError(w http.ResponseWriter, r *http.Request, err error) {
	var verr *live.ValidationError
	switch {
	case errors.Is(err, live.ErrNotFound):
		writeError(w, errNotFound)
	case errors.Is(err, live.ErrSelf):
		writeError(w, errorf(http.StatusBadRequest, "self_conversation", "You cannot start a conversation with yourself."))
	case errors.Is(err, page.ErrBadCursor):
		writeError(w, invalidInput(map[string][]string{"cursor": {"Invalid cursor."}}))
	case errors.As(err, &verr):
		writeError(w, invalidInput(verr.Fields))
	default:
		s.fail(w, r, err)
	}
}

func (s *server) handleNotifications() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		list, next, err := s.live.Notifications(r.Context(), currentUser(r).ID, p)
		if err != nil {
			s.liveError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newPage(list, next))
	}
}

func (s *server) handleUnreadCount() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := s.live.UnreadCount(r.Context(), currentUser(r).ID)
		if err != nil {
			s.liveError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int64{"count": n})
	}
}

func (s *server) handleMarkRead() http.HandlerFunc {
	type request struct {
		IDs *[]int64 `json:"ids"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var req request
		raw := r.ContentLength != 0
		if raw {
			if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
				writeError(w, e)
				return
			}
		}
		var ids []int64
		if req.IDs != nil {
			ids = *req.IDs
			if ids == nil {
				ids = []int64{}
			}
			if len(ids) > 1000 {
				writeError(w, invalidInput(map[string][]string{"ids": {"At most 1000 ids."}}))
				return
			}
		}
		n, err := s.live.MarkRead(r.Context(), currentUser(r).ID, ids)
		if err != nil {
			s.liveError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int64{"count": n})
	}
}

func (s *server) handleConversations() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		list, next, err := s.live.Conversations(r.Context(), currentUser(r).ID, p)
		if err != nil {
			s.liveError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newPage(list, next))
	}
}

func (s *server) handleOpenConversation() http.HandlerFunc {
	type request struct {
		Username string `json:"username"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var req request
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		if f := required(nil, "username", req.Username); f != nil {
			writeError(w, invalidInput(f))
			return
		}
		c, created, err := s.live.OpenConversation(r.Context(), currentUser(r).ID, req.Username)
		if err != nil {
			s.liveError(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, c)
	}
}

func (s *server) handleMessages() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		list, next, err := s.live.Messages(r.Context(), currentUser(r).ID, id, p)
		if err != nil {
			s.liveError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newPage(list, next))
	}
}

func (s *server) handleSendMessage() http.HandlerFunc {
	type request struct {
		Content string `json:"content"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		var req request
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		m, err := s.live.Send(r.Context(), currentUser(r).ID, id, req.Content)
		if err != nil {
			s.liveError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, m)
	}
}

// handlePresence answers {"username": online} for up to 100 usernames;
// unknown usernames are reported offline (no enumeration of accounts).
func (s *server) handlePresence() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for _, n := range strings.Split(r.URL.Query().Get("users"), ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		if len(names) == 0 || len(names) > 100 {
			writeError(w, invalidInput(map[string][]string{"users": {"Give 1 to 100 comma-separated usernames."}}))
			return
		}
		ids := map[string]int64{}
		var list []int64
		for _, n := range names {
			if id, err := s.social.UserID(r.Context(), n); err == nil {
				ids[n] = id
				list = append(list, id)
			}
		}
		online, err := s.hub.Online(r.Context(), list)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out := make(map[string]bool, len(names))
		for _, n := range names {
			out[n] = online[ids[n]]
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// handleWebSocket authenticates by the access_token cookie or query
// parameter, refuses untrusted origins, and hands the socket to the hub,
// which closes it when the token expires.
func (s *server) handleWebSocket() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && !s.trusted(origin) {
			writeError(w, errorf(http.StatusForbidden, "origin_not_allowed", "WebSocket connections from this origin are not allowed."))
			return
		}
		token := r.URL.Query().Get("access_token")
		if token == "" {
			if c, err := r.Cookie(cookieAccess); err == nil {
				token = c.Value
			}
		}
		if token == "" {
			if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
				token = strings.TrimPrefix(h, "Bearer ")
			}
		}
		u, err := s.accounts.UserFromAccessToken(r.Context(), token)
		if err != nil {
			writeError(w, errNotAuth)
			return
		}
		expires, err := s.accounts.AccessTokenExpiry(token)
		if err != nil {
			writeError(w, errNotAuth)
			return
		}
		info(r.Context()).userID = u.ID
		if err := s.hub.Accept(w, r, u.ID, expires); err != nil {
			s.log.DebugContext(r.Context(), "websocket ended", "user_id", u.ID, "err", err)
		}
	}
}
