package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"plaza/internal/media"
	"plaza/internal/page"
	"plaza/internal/post"
	"plaza/internal/social"
)

// JSON views shared by the social and post routes.

type summaryJSON struct {
	ID             int64  `json:"id"`
	Username       string `json:"username"`
	ProfilePicture string `json:"profile_picture"`
	IsFollowing    bool   `json:"is_following"`
}

type profileJSON struct {
	ID             int64  `json:"id"`
	Username       string `json:"username"`
	Email          string `json:"email,omitempty"`
	FirstName      string `json:"first_name"`
	LastName       string `json:"last_name"`
	Bio            string `json:"bio"`
	ProfilePicture string `json:"profile_picture"`
	CoverImage     string `json:"cover_image"`
	FollowersCount int64  `json:"followers_count"`
	FollowingCount int64  `json:"following_count"`
	PostsCount     int64  `json:"posts_count"`
	IsFollowing    bool   `json:"is_following"`
	FollowsYou     bool   `json:"follows_you"`
	CreatedAt      string `json:"created_at"`
}

type postJSON struct {
	ID            int64       `json:"id"`
	Author        summaryJSON `json:"author"`
	Title         string      `json:"title"`
	Content       string      `json:"content"`
	Media         []mediaJSON `json:"media"`
	LikesCount    int64       `json:"likes_count"`
	CommentsCount int64       `json:"comments_count"`
	LikedByMe     bool        `json:"liked_by_me"`
	CreatedAt     string      `json:"created_at"`
	UpdatedAt     string      `json:"updated_at"`
}

type commentJSON struct {
	ID        int64       `json:"id"`
	Author    summaryJSON `json:"author"`
	Content   string      `json:"content"`
	CreatedAt string      `json:"created_at"`
}

// pageJSON is the shape of every paginated list.
type pageJSON[T any] struct {
	Results []T     `json:"results"`
	Next    *string `json:"next"`
}

func newPage[T any](items []T, next string) pageJSON[T] {
	if items == nil {
		items = []T{}
	}
	p := pageJSON[T]{Results: items}
	if next != "" {
		p.Next = &next
	}
	return p
}

func timeJSON(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// pictureURL is the absolute URL of a profile picture, or the default.
func (s *server) pictureURL(key string) string {
	if key == "" {
		return s.cfg.PublicURL + "/static/default-avatar.svg"
	}
	return s.mediaURL(key)
}

func (s *server) coverURL(key string) string {
	if key == "" {
		return s.cfg.PublicURL + "/static/default-cover.svg"
	}
	return s.mediaURL(key)
}

// mediaURL is the stable URL of a stored file; GET on it serves the file
// (or redirects to a presigned URL when storage is S3).
func (s *server) mediaURL(key string) string { return s.cfg.PublicURL + "/media/" + key }

func (s *server) profileView(p social.Profile) profileJSON {
	return profileJSON{
		ID: p.ID, Username: p.Username, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName, Bio: p.Bio,
		ProfilePicture: s.pictureURL(p.PictureKey), CoverImage: s.coverURL(p.CoverKey),
		FollowersCount: p.FollowersCount, FollowingCount: p.FollowingCount, PostsCount: p.PostsCount,
		IsFollowing: p.IsFollowing, FollowsYou: p.FollowsYou, CreatedAt: timeJSON(p.CreatedAt),
	}
}

func (s *server) summaryView(sm social.Summary) summaryJSON {
	return summaryJSON{ID: sm.ID, Username: sm.Username, ProfilePicture: s.pictureURL(sm.PictureKey), IsFollowing: sm.IsFollowing}
}

func (s *server) authorView(a post.Author) summaryJSON {
	return summaryJSON{ID: a.ID, Username: a.Username, ProfilePicture: s.pictureURL(a.PictureKey), IsFollowing: a.IsFollowing}
}

func (s *server) postView(r *http.Request, p post.Post) postJSON {
	return postJSON{
		ID: p.ID, Author: s.authorView(p.Author), Title: p.Title, Content: p.Content, Media: s.mediaViews(p.Media),
		LikesCount: p.LikesCount, CommentsCount: p.CommentsCount, LikedByMe: p.LikedByMe,
		CreatedAt: timeJSON(p.CreatedAt), UpdatedAt: timeJSON(p.UpdatedAt),
	}
}

func (s *server) postsView(r *http.Request, posts []post.Post) []postJSON {
	out := make([]postJSON, len(posts))
	for i, p := range posts {
		out[i] = s.postView(r, p)
	}
	return out
}

func (s *server) commentView(c post.Comment) commentJSON {
	return commentJSON{ID: c.ID, Author: s.authorView(c.Author), Content: c.Content, CreatedAt: timeJSON(c.CreatedAt)}
}

// pageRequest reads ?limit= and ?cursor=; it has answered 400 when ok is false.
func pageRequest(w http.ResponseWriter, r *http.Request) (page.Request, bool) {
	p, err := page.Parse(r.URL.Query().Get("limit"), r.URL.Query().Get("cursor"))
	switch {
	case errors.Is(err, page.ErrBadLimit):
		writeError(w, invalidInput(map[string][]string{"limit": {"Expected a positive whole number."}}))
		return p, false
	case err != nil:
		writeError(w, invalidInput(map[string][]string{"cursor": {"Invalid cursor."}}))
		return p, false
	}
	return p, true
}

// pathID reads a positive integer path value; anything else is a 404.
func pathID(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, errNotFound)
		return 0, false
	}
	return id, true
}

// viewerID is the caller's id, 0 when anonymous.
func viewerID(r *http.Request) int64 {
	if u := currentUser(r); u != nil {
		return u.ID
	}
	return 0
}

// domainError answers the errors domain services share.
func (s *server) domainError(w http.ResponseWriter, r *http.Request, err error) {
	var pv *post.ValidationError
	var sv *social.ValidationError
	switch {
	case errors.Is(err, post.ErrNotFound), errors.Is(err, social.ErrNotFound):
		writeError(w, errNotFound)
	case errors.Is(err, post.ErrForbidden):
		writeError(w, errorf(http.StatusForbidden, "permission_denied", "You do not have permission to perform this action."))
	case errors.Is(err, media.ErrNotOwned):
		writeError(w, invalidInput(map[string][]string{"media_ids": {"Media must be your own, ready to use and not attached to another post."}}))
	case errors.Is(err, social.ErrSelfFollow):
		writeError(w, errorf(http.StatusBadRequest, "self_follow", "You cannot follow yourself."))
	case errors.As(err, &pv):
		writeError(w, invalidInput(pv.Fields))
	case errors.As(err, &sv):
		writeError(w, invalidInput(sv.Fields))
	default:
		s.fail(w, r, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
