package api

import (
	"context"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIDocument checks that the embedded document loads, is a valid
// OpenAPI 3 document (examples included) and follows the API.md conventions
// that a validator cannot know about.
func TestOpenAPIDocument(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPIYAML)
	if err != nil {
		t.Fatalf("load api/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableMultiError()); err != nil {
		t.Fatalf("api/openapi.yaml is not valid: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}

	// Paths outside /api/, the HLS files and the tus upload URLs (which
	// tus clients call exactly as the Location header says) are the only
	// ones without a trailing slash.
	for path, item := range doc.Paths.Map() {
		slashless := !strings.HasPrefix(path, "/api/") ||
			path == "/api/openapi.yaml" ||
			strings.HasSuffix(path, ".m3u8") ||
			path == "/api/uploads/{upload_id}"
		if !slashless && !strings.HasSuffix(path, "/") {
			t.Errorf("%s: API routes end with /", path)
		}
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s: no operationId", method, path)
			}
			if op.Responses.Len() == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
			if op.Responses.Default() != nil {
				t.Errorf("%s %s: a default response would let any status pass the checks", method, path)
			}
		}
	}

	for _, name := range []string{"BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed",
		"PayloadTooLarge", "UnsupportedMediaType", "TooManyRequests", "ServiceUnavailable"} {
		if doc.Components.Responses[name] == nil {
			t.Errorf("components/responses/%s is missing", name)
		}
	}
}
