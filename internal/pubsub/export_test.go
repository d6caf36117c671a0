package pubsub

import "time"

// SetHealthCheckInterval shortens the health check of subscriptions opened
// afterwards, so tests need not wait defaultHealthInterval.
func SetHealthCheckInterval(r *Redis, d time.Duration) { r.health = d }
