package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3 part sizes. S3 refuses parts under 5 MiB (but the last) and uploads
// of more than 10,000 parts.
const (
	DefaultPartSize = 8 << 20
	minPartSize     = 5 << 20
	maxParts        = 10000
	// smallPut is how much of a reader of unknown size Put reads ahead: a
	// blob that fits is sent in one PUT instead of a three-request
	// multipart upload.
	smallPut = 1 << 20
)

// S3Options configures an S3 store.
type S3Options struct {
	Endpoint  string // host:port, e.g. s3.amazonaws.com or 127.0.0.1:7070
	Region    string // e.g. us-east-1; empty asks the server once per bucket
	Bucket    string
	AccessKey string
	SecretKey string
	Secure    bool // HTTPS
	// PathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint (needed by most self-hosted servers behind a
	// hostname; IP endpoints always use path style).
	PathStyle bool
	// CreateBucket makes NewS3 create the bucket when it is missing.
	CreateBucket bool
	// Prefix, when set, keeps every key of the store under Prefix/ in the
	// bucket, so several deployments or test runs can share one bucket. It
	// follows the rules of ValidKey.
	Prefix string
	// PartSize is the multipart part size, which is also the memory one
	// upload of a large blob holds (DefaultPartSize when 0, at least 5 MiB).
	// A blob of unknown size may be at most PartSize × 10,000 bytes (78 GiB
	// at the default); known sizes raise the part size as needed.
	PartSize uint64
	// Transport replaces the HTTP transport (tests, custom TLS roots).
	Transport http.RoundTripper
}

// S3 stores blobs as objects in an S3 bucket through minio-go. Put uses a
// single streamed PUT for blobs up to PartSize and a multipart upload
// (holding one part in memory) above; either way the object appears
// atomically when the upload completes. Open returns a minio object that
// fetches with HTTP Range requests as it is read and sought, and refuses to
// mix versions if the blob is replaced while open (If-Match on the ETag).
//
// An upload that fails or is cancelled may leave an incomplete multipart
// upload behind, invisible to readers but using space: give the bucket an
// AbortIncompleteMultipartUpload lifecycle rule.
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or "p/"
	partSize uint64
	endpoint string
}

var _ Store = (*S3)(nil)

// NewS3 returns a store for opts.Bucket. It contacts the server only when
// opts.CreateBucket is set; use Ping to check it answers.
func NewS3(ctx context.Context, opts S3Options) (*S3, error) {
	if opts.Endpoint == "" {
		return nil, errors.New("blob: s3: no endpoint")
	}
	if err := s3utils.CheckValidBucketNameStrict(opts.Bucket); err != nil {
		return nil, fmt.Errorf("blob: s3: bucket %q: %v", opts.Bucket, err)
	}
	prefix := ""
	if opts.Prefix != "" {
		p, err := cleanPrefix(opts.Prefix, false)
		if err != nil {
			return nil, fmt.Errorf("blob: s3: prefix %q: keys rules apply (see blob.ValidKey)", opts.Prefix)
		}
		prefix = p + "/"
	}
	partSize := opts.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < minPartSize || partSize > 5<<30 {
		return nil, fmt.Errorf("blob: s3: part size %d out of range [5 MiB, 5 GiB]", partSize)
	}
	if opts.AccessKey == "" || opts.SecretKey == "" {
		return nil, errors.New("blob: s3: no credentials; set PLAZA_S3_ACCESS_KEY and PLAZA_S3_SECRET_KEY (or s3://KEY:SECRET@bucket)")
	}
	transport := opts.Transport
	if transport == nil {
		t, err := minio.DefaultTransport(opts.Secure)
		if err != nil {
			return nil, fmt.Errorf("blob: s3: %w", err)
		}
		// A server proxying video keeps many requests to the bucket in
		// flight; keep their connections.
		t.MaxIdleConnsPerHost = 256
		transport = t
	}
	lookup := minio.BucketLookupAuto
	if opts.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(opts.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Secure:       opts.Secure,
		Region:       opts.Region,
		BucketLookup: lookup,
		Transport:    transport,
		MaxRetries:   3,
	})
	if err != nil {
		// minio's errors name the endpoint, never the credentials.
		return nil, fmt.Errorf("blob: s3: endpoint %q: %w", opts.Endpoint, err)
	}
	s := &S3{client: client, bucket: opts.Bucket, prefix: prefix, partSize: partSize, endpoint: opts.Endpoint}
	if opts.CreateBucket {
		if err := s.createBucket(ctx, opts.Region); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *S3) createBucket(ctx context.Context, region string) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blob: s3 %s: bucket %q: %w", s.endpoint, s.bucket, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code != minio.BucketAlreadyOwnedByYou && code != minio.BucketAlreadyExists {
			return fmt.Errorf("blob: s3 %s: create bucket %q: %w", s.endpoint, s.bucket, err)
		}
	}
	return nil
}

// Close does nothing; it is there so both stores are io.Closers.
func (s *S3) Close() error { return nil }

// Bucket returns the bucket name.
func (s *S3) Bucket() string { return s.bucket }

// Client returns the underlying minio client, for what Store does not do.
func (s *S3) Client() *minio.Client { return s.client }

// name is the object name of key.
func (s *S3) name(key string) string { return s.prefix + key }

// fail turns a minio error for key into the package's vocabulary.
func (s *S3) fail(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("blob: %s %q: %w", op, key, err)
	}
	resp := minio.ToErrorResponse(err)
	if resp.Code == minio.NoSuchKey || resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket {
		return fmt.Errorf("%w: %s %q", ErrNotFound, op, key)
	}
	return fmt.Errorf("blob: s3 %s %q: %w", op, key, err)
}

// info converts minio's object info.
func (s *S3) info(key string, oi minio.ObjectInfo) Info {
	ct := oi.ContentType
	if ct == "" {
		ct = ContentTypeFor(key)
	}
	etag := ""
	if oi.ETag != "" {
		etag = `"` + strings.Trim(oi.ETag, `"`) + `"`
	}
	return Info{Key: key, Size: oi.Size, ContentType: ct, ModTime: oi.LastModified.UTC(), ETag: etag}
}

var smallPool = sync.Pool{New: func() any { b := make([]byte, smallPut); return &b }}

// Put implements Store. contentType is stored with the object;
// ContentTypeFor(key) is used when it is empty.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (err error) {
	if !ValidKey(key) {
		return invalidKey(key)
	}
	if size < -1 {
		return fmt.Errorf("blob: put %q: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: put %q: %w", key, err)
	}
	if contentType == "" {
		contentType = ContentTypeFor(key)
	}
	// Hiding r's other methods (ReaderAt, Seeker) keeps minio on its
	// sequential, one-part-buffer upload path.
	exact := &exactReader{r: &ctxReader{ctx: ctx, r: r}, want: size}
	var src io.Reader = exact
	if size == 0 {
		// minio sends an empty body without reading; check r is empty.
		if _, err := exact.Read(make([]byte, 1)); err != io.EOF {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return fmt.Errorf("blob: put %q: %w", key, err)
		}
	}
	if size < 0 {
		// Read ahead: a small blob goes in one PUT.
		bp := smallPool.Get().(*[]byte)
		// Only a finished upload surely has no reader of the buffer left:
		// after an error the HTTP transport may still be sending it.
		defer func() {
			if err == nil {
				smallPool.Put(bp)
			}
		}()
		n, rerr := io.ReadFull(src, *bp)
		switch rerr {
		case io.EOF, io.ErrUnexpectedEOF:
			src, size = bytes.NewReader((*bp)[:n]), int64(n)
		case nil:
			src = io.MultiReader(bytes.NewReader(*bp), src)
		default:
			if ctx.Err() != nil {
				rerr = ctx.Err()
			}
			return fmt.Errorf("blob: put %q: %w", key, rerr)
		}
	}
	partSize := s.partSize
	if size >= 0 && uint64(size) > partSize*maxParts {
		partSize = (uint64(size) + maxParts - 1) / maxParts
		partSize = (partSize + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
	}
	_, err = s.client.PutObject(ctx, s.bucket, s.name(key), src, size, minio.PutObjectOptions{
		ContentType: contentType,
		PartSize:    partSize,
	})
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if m := exact.mismatchErr(); m != nil {
			err = m
		}
		if errors.Is(err, ErrSizeMismatch) {
			return fmt.Errorf("blob: put %q: %w", key, err)
		}
		return s.fail("put", key, err)
	}
	return nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if !ValidKey(key) {
		return Info{}, invalidKey(key)
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.name(key), minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.fail("stat", key, err)
	}
	return s.info(key, oi), nil
}

// S3Object is a blob opened from an S3 store: a minio object, which reads
// with Range requests from wherever it was sought to. Seeking past the
// end fails with io.EOF.
type S3Object struct {
	obj  *minio.Object
	info Info
}

var _ Object = (*S3Object)(nil)

// Open implements Store. It asks for the object's metadata (one HEAD
// request) so a missing key fails here; the data is fetched as it is read.
// ctx bounds the object's whole life, reads included.
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	if !ValidKey(key) {
		return nil, invalidKey(key)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.name(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.fail("open", key, err)
	}
	oi, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, s.fail("open", key, err)
	}
	return &S3Object{obj: obj, info: s.info(key, oi)}, nil
}

func (o *S3Object) Read(p []byte) (int, error)                   { return o.obj.Read(p) }
func (o *S3Object) ReadAt(p []byte, off int64) (int, error)      { return o.obj.ReadAt(p, off) }
func (o *S3Object) Seek(offset int64, whence int) (int64, error) { return o.obj.Seek(offset, whence) }
func (o *S3Object) Close() error                                 { return o.obj.Close() }

// Info implements Object.
func (o *S3Object) Info() Info { return o.info }

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return invalidKey(key)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.name(key), minio.RemoveObjectOptions{}); err != nil {
		if err := s.fail("delete", key, err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// DeletePrefix implements Store, with batched multi-object deletes.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) error {
	p, err := cleanPrefix(prefix, false)
	if err != nil {
		return err
	}
	return s.removeAll(ctx, s.name(p)+"/")
}

// removeAll deletes every object whose name starts with namePrefix.
func (s *S3) removeAll(parent context.Context, namePrefix string) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel() // stops the listing if removal fails early
	objects := s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: namePrefix, Recursive: true})
	var listErr error
	toRemove := make(chan minio.ObjectInfo)
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		defer close(toRemove)
		for oi := range objects {
			if oi.Err != nil {
				listErr = oi.Err
				return
			}
			select {
			case toRemove <- oi:
			case <-ctx.Done():
				return
			}
		}
	}()
	var firstErr error
	for e := range s.client.RemoveObjects(ctx, s.bucket, toRemove, minio.RemoveObjectsOptions{}) {
		if firstErr == nil && e.Err != nil && minio.ToErrorResponse(e.Err).Code != minio.NoSuchKey {
			firstErr = fmt.Errorf("blob: s3 delete %q: %w", strings.TrimPrefix(e.ObjectName, s.prefix), e.Err)
			cancel()
		}
	}
	cancel()
	<-listed
	if firstErr != nil {
		return firstErr
	}
	if listErr != nil {
		return fmt.Errorf("blob: s3 delete prefix %q: %w", strings.TrimPrefix(namePrefix, s.prefix), listErr)
	}
	if err := parent.Err(); err != nil {
		return fmt.Errorf("blob: s3 delete prefix %q: %w", strings.TrimPrefix(namePrefix, s.prefix), err)
	}
	return nil
}

// List implements Store: every blob under prefix/ (everything for ""),
// sorted by key, with ContentType from ContentTypeFor.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	p, err := cleanPrefix(prefix, true)
	if err != nil {
		return nil, err
	}
	name := s.prefix
	if p != "" {
		name = s.name(p) + "/"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := []Info{}
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: name, Recursive: true}) {
		if oi.Err != nil {
			return nil, s.fail("list", prefix, oi.Err)
		}
		key := strings.TrimPrefix(oi.Key, s.prefix)
		if !ValidKey(key) { // e.g. "dir/" markers made by other tools
			continue
		}
		oi.ContentType = ""
		out = append(out, s.info(key, oi))
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// PresignGet implements Store: a GET URL valid for ttl (1 s to 7 days),
// signed with the store's credentials.
func (s *S3) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if !ValidKey(key) {
		return "", invalidKey(key)
	}
	if ttl < time.Second || ttl > 7*24*time.Hour {
		return "", fmt.Errorf("blob: presign %q: ttl %s out of range [1s, 7 days]", key, ttl)
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.name(key), ttl, nil)
	if err != nil {
		return "", s.fail("presign", key, err)
	}
	return u.String(), nil
}

// LocalPath implements Store: objects in a bucket have no local path.
func (s *S3) LocalPath(key string) (string, bool) { return "", false }

// Ping implements Store: the bucket must exist and the credentials work.
func (s *S3) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blob: s3 %s: bucket %q: %w", s.endpoint, s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("blob: s3 %s: bucket %q does not exist", s.endpoint, s.bucket)
	}
	return nil
}
