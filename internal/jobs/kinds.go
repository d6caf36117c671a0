package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"plaza/internal/account"
	"plaza/internal/live"
	"plaza/internal/media"
	"plaza/internal/post"
	"plaza/internal/social"
)

// Deps are the services workers call into.
type Deps struct {
	Accounts *account.Service
	Social   *social.Service
	Posts    *post.Service
	Media    *media.Service
	Uploads  *media.Uploads
	Live     *live.Service
	Log      *slog.Logger
	// TranscodeTimeout bounds one transcode; FFmpeg dies with it.
	TranscodeTimeout time.Duration
}

// ExpireUploadsArgs removes abandoned and consumed uploads.
type ExpireUploadsArgs struct{}

// Kind names the job.
func (ExpireUploadsArgs) Kind() string { return "media.expire_uploads" }

// transcodeWorker runs media.transcode with its own (long) timeout.
type transcodeWorker struct {
	river.WorkerDefaults[media.TranscodeArgs]
	media   *media.Service
	timeout time.Duration
}

// Timeout is -1 (none) for River: the deadline is applied inside Work, so
// that River's rescuer treats a transcode like any job and hands a crashed
// worker's transcode out again after PLAZA_JOB_RESCUE_AFTER; the media
// lease keeps a rescued job from running beside a live one.
func (w *transcodeWorker) Timeout(*river.Job[media.TranscodeArgs]) time.Duration { return -1 }

func (w *transcodeWorker) Work(ctx context.Context, j *river.Job[media.TranscodeArgs]) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	err := w.media.TranscodeJob(ctx, j.Args.MediaID, j.Attempt >= j.MaxAttempts)
	switch {
	case errors.Is(err, media.ErrPermanent):
		return river.JobCancel(err) // the input is bad; retrying cannot help
	case errors.Is(err, media.ErrBusy):
		return river.JobSnooze(30 * time.Second)
	}
	return err
}

// TrendsArgs recomputes trending hashtags and posts.
type TrendsArgs struct{}

// Kind names the job.
func (TrendsArgs) Kind() string { return "post.trends" }

// SuggestionsArgs refreshes follow suggestions of active users.
type SuggestionsArgs struct{}

// Kind names the job.
func (SuggestionsArgs) Kind() string { return "social.suggestions" }

// TrimFeedsArgs bounds the size of materialised home feeds.
type TrimFeedsArgs struct{}

// Kind names the job.
func (TrimFeedsArgs) Kind() string { return "post.trim_feeds" }

// PurgeTokensArgs is the periodic clean-up of expired tokens.
type PurgeTokensArgs struct{}

// Kind names the job.
func (PurgeTokensArgs) Kind() string { return "account.purge_expired_tokens" }

// Workers registers every job kind's worker.
func Workers(d Deps) *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[account.PasswordResetMailArgs]) error {
		return d.Accounts.SendPasswordReset(ctx, j.Args.Email)
	}))
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[PurgeTokensArgs]) error {
		n, err := d.Accounts.PurgeExpiredTokens(ctx)
		if err == nil && n > 0 {
			d.Log.InfoContext(ctx, "purged expired tokens", "count", n)
		}
		return err
	}))
	// Jobs of the kinds by which earlier versions fanned out posts, one
	// per post: their posts go back on the fan-out queue, whose batches
	// skip what was already done.
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[post.FanOutArgs]) error {
		return d.Posts.EnqueueFanOut(ctx, j.Args.PostID)
	}))
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[live.NotifyFollowersArgs]) error {
		return d.Posts.EnqueueFanOut(ctx, j.Args.PostID)
	}))
	if d.Media != nil {
		timeout := d.TranscodeTimeout
		if timeout <= 0 {
			timeout = 2 * time.Hour
		}
		river.AddWorker(w, &transcodeWorker{media: d.Media, timeout: timeout})
	}
	if d.Live != nil {
		river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[live.NotifyArgs]) error {
			return d.Live.Deliver(ctx, j.Args)
		}))
	}
	if d.Uploads != nil {
		river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[ExpireUploadsArgs]) error {
			n, err := d.Uploads.ExpireAbandoned(ctx)
			if err == nil && n > 0 {
				d.Log.InfoContext(ctx, "removed expired uploads", "count", n)
			}
			return err
		}))
	}
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[TrendsArgs]) error {
		_, err := d.Posts.ComputeTrends(ctx)
		return err
	}))
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[SuggestionsArgs]) error {
		// Batches keep each transaction short; the job stops when no user
		// is stale or its time is nearly up (the next run continues).
		deadline := time.Now().Add(4 * time.Minute)
		for time.Now().Before(deadline) {
			n, err := d.Social.ComputeSuggestions(ctx, 100, 6*time.Hour)
			if err != nil || n == 0 {
				return err
			}
		}
		return nil
	}))
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[TrimFeedsArgs]) error {
		var after int64
		for {
			next, err := d.Posts.TrimFeeds(ctx, after, 500)
			if err != nil || next == 0 {
				return err
			}
			after = next
		}
	}))
	return w
}

// Periodic is the schedule of recurring jobs. River runs each on the
// elected leader only, however many workers there are.
func Periodic() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return PurgeTokensArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(10*time.Minute),
			func() (river.JobArgs, *river.InsertOpts) { return TrendsArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(30*time.Minute),
			func() (river.JobArgs, *river.InsertOpts) { return SuggestionsArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return TrimFeedsArgs{}, nil }, nil),
		river.NewPeriodicJob(river.PeriodicInterval(15*time.Minute),
			func() (river.JobArgs, *river.InsertOpts) { return ExpireUploadsArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
}
