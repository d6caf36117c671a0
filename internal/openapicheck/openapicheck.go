// Package openapicheck validates real HTTP exchanges against the Plaza
// contract, api/openapi.yaml. It is meant for tests: end-to-end tests put
// [Checker.Wrap] on their http.Client (or call [Checker.Check] on each answer)
// so that every response they see is checked against the document.
//
// Only responses are validated. Request bodies are not, because tests send
// malformed requests on purpose, and neither is authentication.
package openapicheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"plaza/api"
)

// Checker validates real HTTP exchanges against api/openapi.yaml.
// It is safe for concurrent use.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
}

// The embedded document never changes, so it is parsed and validated once
// per test binary.
var loadEmbedded = sync.OnceValues(func() (*Checker, error) {
	return load(api.OpenAPIYAML)
})

// New returns a Checker for the embedded api/openapi.yaml. It fails the test
// (t.Fatalf) when the document does not load or is not a valid OpenAPI 3
// document.
func New(t testing.TB) *Checker {
	t.Helper()
	c, err := loadEmbedded()
	if err != nil {
		t.Fatalf("openapicheck: api/openapi.yaml: %v", err)
		return nil
	}
	return c
}

// load parses data, validates it as an OpenAPI 3 document and builds a router
// that matches requests by path only.
func load(data []byte) (*Checker, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableMultiError()); err != nil {
		return nil, fmt.Errorf("invalid document: %w", err)
	}
	// Match on the path alone: tests talk to servers on random loopback
	// ports, so whatever hosts the document lists must not take part.
	routed := *doc
	routed.Servers = openapi3.Servers{{URL: "/"}}
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &Checker{doc: doc, router: router}, nil
}

// Check validates one exchange and reports a failure with t.Errorf, naming
// the method, the path, the status and the validation error. It fails when
// the path or method is not documented, when the status is not documented for
// the operation, or when the body or a required header does not match what
// the document says for that status and content type.
//
// body is the response body the caller already read; resp.Body is not
// touched. req may be nil when resp.Request is set. Its URL may be absolute:
// only the path is matched.
func (c *Checker) Check(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	if req == nil && resp != nil {
		req = resp.Request
	}
	if err := c.Validate(req, resp, body); err != nil {
		method, path, status := "?", "?", 0
		if req != nil {
			method = req.Method
			if req.URL != nil {
				path = req.URL.RequestURI()
			}
		}
		if resp != nil {
			status = resp.StatusCode
		}
		t.Errorf("openapicheck: %s %s -> %d: %v%s", method, path, status, err, excerpt(body))
	}
}

// Validate is Check without a test: it returns the validation error, or nil.
func (c *Checker) Validate(req *http.Request, resp *http.Response, body []byte) error {
	if resp == nil {
		return errors.New("no response")
	}
	if req == nil {
		req = resp.Request
	}
	if req == nil || req.URL == nil {
		return errors.New("no request")
	}
	routeReq := pathOnly(req)
	foldMediaKey(routeReq)
	route, params, err := c.findRoute(routeReq)
	switch {
	case err == nil:
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return c.undocumentedMethod(routeReq, resp, body)
	case errors.Is(err, routers.ErrPathNotFound):
		return errors.New("path not documented in api/openapi.yaml")
	default:
		return fmt.Errorf("route: %w", err)
	}
	if req.Method == http.MethodHead {
		// openapi3filter ignores HEAD answers; a HEAD has no body, so only
		// its status can be checked.
		return statusDocumented(route, resp.StatusCode)
	}
	return c.validate(routeReq, route, params, resp.StatusCode, resp.Header, body)
}

func (c *Checker) validate(req *http.Request, route *routers.Route, params map[string]string, status int, header http.Header, body []byte) error {
	if err := statusDocumented(route, status); err != nil {
		return err
	}
	if header == nil {
		header = http.Header{}
	}
	opts := &openapi3filter.Options{
		ExcludeRequestBody:      true,
		IncludeResponseStatus:   true,
		MultiError:              true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{stringFormats, openapi3.DisableSchemaErrorDetails()},
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    opts,
		},
		Status:  status,
		Header:  header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: opts,
	}
	return openapi3filter.ValidateResponse(context.Background(), input)
}

// findRoute matches req, falling back to the slashed path: API.md says a
// route called without its trailing slash answers as the slashed one would.
func (c *Checker) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := c.router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) && !strings.HasSuffix(req.URL.Path, "/") {
		slashed := req.Clone(req.Context())
		slashed.URL.Path += "/"
		if slashed.URL.RawPath != "" {
			slashed.URL.RawPath += "/"
		}
		if r, p, err2 := c.router.FindRoute(slashed); err2 == nil || !errors.Is(err2, routers.ErrPathNotFound) {
			return r, p, err2
		}
	}
	return route, params, err
}

// undocumentedMethod handles a documented path called with a method its path
// item does not list. That is acceptable in three cases only:
//   - HEAD on a GET operation (net/http serves HEAD for GET routes): the
//     status must be one GET documents;
//   - OPTIONS, a CORS preflight, which is not an API operation;
//   - an answer of 405 in the shared Error shape
//     (components/responses/MethodNotAllowed).
func (c *Checker) undocumentedMethod(req *http.Request, resp *http.Response, body []byte) error {
	switch {
	case req.Method == http.MethodHead:
		get := req.Clone(req.Context())
		get.Method = http.MethodGet
		route, _, err := c.findRoute(get)
		if err != nil {
			break
		}
		return statusDocumented(route, resp.StatusCode)
	case req.Method == http.MethodOptions:
		return nil
	}
	if resp.StatusCode != http.StatusMethodNotAllowed {
		return fmt.Errorf("method %s not documented for this path in api/openapi.yaml", req.Method)
	}
	ref := c.doc.Components.Responses["MethodNotAllowed"]
	if ref == nil {
		return errors.New("405 answered but components/responses/MethodNotAllowed is missing")
	}
	responses := openapi3.NewResponses(openapi3.WithStatus(http.StatusMethodNotAllowed, ref))
	route := &routers.Route{
		Spec:      c.doc,
		Path:      req.URL.Path,
		Method:    req.Method,
		Operation: &openapi3.Operation{Responses: responses},
	}
	return c.validate(req, route, nil, resp.StatusCode, resp.Header, body)
}

// statusDocumented reports an error unless route's operation documents status.
func statusDocumented(route *routers.Route, status int) error {
	responses := route.Operation.Responses
	if responses.Status(status) == nil && responses.Default() == nil {
		return fmt.Errorf("status %d is not documented for %s %s", status, route.Method, route.Path)
	}
	return nil
}

// pathOnly returns a copy of req whose URL keeps only the path and query, so
// routing ignores the scheme and host of an absolute client URL.
func pathOnly(req *http.Request) *http.Request {
	r := req.Clone(context.Background())
	r.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	if r.URL.Path == "" {
		r.URL.Path = "/"
	}
	r.Host = ""
	r.Body = http.NoBody
	r.GetBody = nil
	r.ContentLength = 0
	return r
}

// Wrap returns a RoundTripper that sends each request with rt (or
// http.DefaultTransport when rt is nil), reads the whole response body,
// checks the exchange with Check and puts the body back, so the caller reads
// it as usual. Put it on the http.Client of a test to have every exchange
// checked. A 101 Switching Protocols answer (a WebSocket) is checked without
// touching its body, which is the live connection.
func (c *Checker) Wrap(t testing.TB, rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &checkingTransport{c: c, t: t, next: rt}
}

type checkingTransport struct {
	c    *Checker
	t    testing.TB
	next http.RoundTripper
}

func (ct *checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := ct.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		ct.c.Check(ct.t, req, resp, nil)
		return resp, nil
	}
	var body []byte
	if resp.Body != nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("openapicheck: reading response body: %w", err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	ct.c.Check(ct.t, req, resp, body)
	return resp, nil
}

// stringFormats makes the formats the document uses mean what API.md says:
// URLs are absolute, times are RFC 3339 in UTC.
var stringFormats = openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{
	"uri":       openapi3.NewCallbackValidator(absoluteURL),
	"email":     openapi3.NewCallbackValidator(emailAddress),
	"date-time": openapi3.NewCallbackValidator(utcDateTime),
})

func absoluteURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an absolute http(s) URL")
	}
	return nil
}

func emailAddress(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return err
	}
	if a.Address != s {
		return errors.New("not a bare email address")
	}
	return nil
}

func utcDateTime(s string) error {
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return errors.New("not an RFC 3339 time")
	}
	if !strings.HasSuffix(s, "Z") {
		return errors.New("not in UTC (must end with Z)")
	}
	return nil
}

// excerpt formats the start of a body for a failure message.
func excerpt(body []byte) string {
	const limit = 512
	if len(body) == 0 {
		return ""
	}
	s := string(body)
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return "\nbody: " + s
}

// foldMediaKey lets /media/{key} match keys with slashes: OpenAPI path
// parameters cannot contain '/', so the document names the key as one
// segment (and says it may have slashes) and the checker folds them.
func foldMediaKey(req *http.Request) {
	if rest, ok := strings.CutPrefix(req.URL.Path, "/media/"); ok && strings.Contains(rest, "/") {
		req.URL.Path = "/media/" + strings.ReplaceAll(rest, "/", "~")
		req.URL.RawPath = ""
	}
}
