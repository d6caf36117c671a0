// Package segments benchmarks authenticated HLS segment serving (issue 4).
//
//   - run.sh compares `plaza serve` with nginx serving the same segment file
//     over loopback with wrk, and profiles plaza under that load.
//
//   - profserve is plaza's HTTP API with /debug/pprof on a second port.
//
//   - segments_test.go splits the in-process cost of one segment request
//     into its parts (JWT, user query, media query, blob open, the
//     middleware chain, the copy of the body):
//
//     go test -run x -bench . -benchmem ./bench/segments/
//
// The results are in docs/performance.md, "Segment serving (issue 4)".
package segments
