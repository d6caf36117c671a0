// Package web holds the files the server serves to browsers: default
// images now, and the browser client and admin UI.
package web

import "embed"

// Static is served under /static/.
//
//go:embed static
var Static embed.FS
