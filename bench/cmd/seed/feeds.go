package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"plaza/internal/db"
	"plaza/internal/post"
)

// rebuildFeeds materialises every user's home feed with the service's own
// RebuildFeed (the newest keep posts by the user and everyone they follow,
// and the floor below which pages are read from the posts table).
func rebuildFeeds(ctx context.Context, d *db.DB, users, keep, workers int, out io.Writer) error {
	svc := post.NewService(d, nil, nil, post.Config{FeedKeep: keep})
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				id := next.Add(1)
				if id > int64(users) {
					return
				}
				if err := svc.RebuildFeed(ctx, id); err != nil {
					errc <- fmt.Errorf("rebuild feed of user %d: %w", id, err)
					cancel()
					return
				}
				if n := done.Add(1); n%int64(max(users/10, 1)) == 0 {
					fmt.Fprintf(out, "  feeds: %d/%d users (%s)\n", n, users, since(start))
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// feedOf is what RebuildFeed would write for user u (1-based): the ids of
// the newest keep posts by u and u's followees, newest first, and the floor.
func (ds *dataset) feedOf(u, keep int) (ids []int32, floor int64) {
	ids = append(ids, ds.postsBy[u-1]...)
	for _, f := range ds.followees[u-1] {
		ids = append(ids, ds.postsBy[f-1]...)
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	if len(ids) > keep {
		ids = ids[:keep]
	}
	if len(ids) >= keep && len(ids) > 0 {
		floor = int64(ids[len(ids)-1]) - 1
	}
	return ids, floor
}

// bulkFeeds writes the same rows as RebuildFeed for every user, computed
// from the generated graph, with the bulk loader (much faster on SQLite,
// where RebuildFeed runs one user at a time on the single writer).
func bulkFeeds(ctx context.Context, ld loader, ds *dataset, keep int) (int64, error) {
	floors := make([]int64, ds.Users)
	n, err := ld.load(ctx, "feed_entries", []string{"user_id", "post_id", "author_id"}, func(yield func([]any) bool) {
		for u := 1; u <= ds.Users; u++ {
			ids, floor := ds.feedOf(u, keep)
			floors[u-1] = floor
			// Ascending within a user: the primary key's order.
			for i := len(ids) - 1; i >= 0; i-- {
				if !yield([]any{u, ids[i], ds.postAuthor[ids[i]-1]}) {
					return
				}
			}
		}
	})
	if err != nil {
		return n, err
	}
	_, err = ld.load(ctx, "feeds", []string{"user_id", "floor_post_id"}, func(yield func([]any) bool) {
		for u := 1; u <= ds.Users; u++ {
			if !yield([]any{u, floors[u-1]}) {
				return
			}
		}
	})
	return n, err
}
