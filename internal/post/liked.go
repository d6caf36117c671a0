package post

import (
	"context"
	"fmt"
	"slices"
	"time"

	"plaza/internal/cache"
)

// The posts a viewer likes, kept in memory for the home feed: its page
// query then reads no likes at all (21 index probes fewer, a third of the
// query's work). A like or unlike drops the viewer's set here and, over
// the broker, on the other instances (OnLikesChanged); PLAZA_CACHE_TTL
// bounds the rest, as for every cache. Users who like more than
// maxLikedKept posts are not kept: their pages probe the likes table.

// maxLikedKept bounds a kept set (8 bytes a like).
const maxLikedKept = 10_000

// likedSet is a user's liked post ids, ascending; tooMany when there were
// more than maxLikedKept.
type likedSet struct {
	ids     []int64
	tooMany bool
}

func (l likedSet) has(postID int64) bool {
	_, ok := slices.BinarySearch(l.ids, postID)
	return ok
}

func newLikedSets(ttl time.Duration) *cache.TTL[int64, likedSet] {
	return cache.New[int64, likedSet](ttl, 100_000)
}

// likedBy returns the posts userID likes, from memory or loaded once;
// ok is false when the set is not kept (caching off, too many likes).
func (s *Service) likedBy(ctx context.Context, userID int64) (likedSet, bool, error) {
	if s.cfg.CacheTTL <= 0 {
		return likedSet{}, false, nil
	}
	set, err := s.cards.liked.Load(userID, func() (likedSet, error) {
		ids, err := s.db.QueryInt64s(ctx, `SELECT post_id FROM likes WHERE user_id = ? ORDER BY post_id LIMIT ?`, userID, maxLikedKept+1)
		if err != nil {
			return likedSet{}, fmt.Errorf("post: liked posts: %w", err)
		}
		if len(ids) > maxLikedKept {
			return likedSet{tooMany: true}, nil
		}
		return likedSet{ids: ids}, nil
	}, nil)
	if err != nil {
		return likedSet{}, false, err
	}
	return set, !set.tooMany, nil
}

// OnLikesChanged registers fn, told of every user whose likes changed here
// (app publishes it to the other instances).
func (s *Service) OnLikesChanged(fn func(ctx context.Context, userID int64)) {
	s.cards.liked.OnChange(fn)
}

// ForgetLikes drops a user's kept likes (after a like or unlike on
// another instance).
func (s *Service) ForgetLikes(userID int64) { s.cards.liked.Delete(userID) }
