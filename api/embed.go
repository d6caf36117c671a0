// Package api holds Plaza's HTTP contract, api/openapi.yaml, embedded into the
// binary so the server can serve it at /api/openapi.yaml and tests can check
// responses against it.
package api

import _ "embed"

// OpenAPIYAML is the OpenAPI 3 document describing the Plaza HTTP API.
//
// It is shared by every user of the package: treat it as read-only and never
// modify its contents (copy it first if a changed version is needed).
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
