package httpapi

import (
	"net/http"

	"plaza/internal/post"
)

type postRequest struct {
	Title    *string `json:"title"`
	Content  *string `json:"content"`
	MediaIDs []int64 `json:"media_ids"`
}

func (s *server) handleCreatePost() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req postRequest
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		p, err := s.posts.Create(r.Context(), currentUser(r).ID, post.Input{Title: req.Title, Content: req.Content, MediaIDs: req.MediaIDs})
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		w.Header().Set("Location", "/api/posts/"+itoa(p.ID)+"/")
		writeJSON(w, http.StatusCreated, s.postView(r, p))
	}
}

func (s *server) handleGetPost() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		p, err := s.posts.Get(r.Context(), viewerID(r), id)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.postView(r, p))
	}
}

func (s *server) handleUpdatePost() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		var req postRequest
		if e := decodeJSON(r, &req, s.cfg.MaxBodyBytes); e != nil {
			writeError(w, e)
			return
		}
		p, err := s.posts.Update(r.Context(), currentUser(r).ID, id, post.Input{Title: req.Title, Content: req.Content})
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.postView(r, p))
	}
}

func (s *server) handleDeletePost() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		if err := s.posts.Delete(r.Context(), currentUser(r).ID, id); err != nil {
			s.domainError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) handleLike() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		n, created, err := s.posts.Like(r.Context(), currentUser(r).ID, id)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, map[string]int64{"likes_count": n})
	}
}

func (s *server) handleUnlike() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		n, err := s.posts.Unlike(r.Context(), currentUser(r).ID, id)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int64{"likes_count": n})
	}
}

func (s *server) handleComments() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		list, next, err := s.posts.Comments(r.Context(), viewerID(r), id, p)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		out := make([]commentJSON, len(list))
		for i, c := range list {
			out[i] = s.commentView(c)
		}
		writeJSON(w, http.StatusOK, newPage(out, next))
	}
}

func (s *server) handleAddComment() http.HandlerFunc {
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
		c, err := s.posts.AddComment(r.Context(), currentUser(r).ID, id, req.Content)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, s.commentView(c))
	}
}

func (s *server) handleDeleteComment() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok {
			return
		}
		if err := s.posts.DeleteComment(r.Context(), currentUser(r).ID, id); err != nil {
			s.domainError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) handleHomeFeed() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		posts, next, err := s.posts.HomeFeed(r.Context(), currentUser(r).ID, p)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newPage(s.postsView(r, posts), next))
	}
}

func (s *server) handleGlobalFeed() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		posts, next, err := s.posts.GlobalFeed(r.Context(), viewerID(r), p)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newPage(s.postsView(r, posts), next))
	}
}

func (s *server) handleHashtag() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tag := post.NormalizeTag(r.PathValue("tag"))
		if tag == "" {
			writeError(w, errNotFound)
			return
		}
		p, ok := pageRequest(w, r)
		if !ok {
			return
		}
		posts, next, err := s.posts.Hashtag(r.Context(), viewerID(r), tag, p)
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, newPage(s.postsView(r, posts), next))
	}
}

func (s *server) handleTrends() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tags, posts, err := s.posts.Trends(r.Context(), viewerID(r))
		if err != nil {
			s.domainError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"hashtags": tags, "posts": s.postsView(r, posts)})
	}
}
