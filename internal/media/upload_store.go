package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/tus/tusd/v2/pkg/filelocker"
	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	"github.com/tus/tusd/v2/pkg/s3store"

	"plaza/internal/blob"
)

// uploadBackend is where the bytes of uploads live: a local directory
// (tusd's filestore) or an S3 bucket (tusd's s3store).
type uploadBackend interface {
	useIn(c *handler.StoreComposer)
	// info is the store's view of an upload (offset, size);
	// handler.ErrNotFound when it has none.
	info(ctx context.Context, id string) (handler.FileInfo, error)
	open(ctx context.Context, id string) (io.ReadCloser, error)
	localPath(id string) string // "" unless the bytes are a local file
	remove(ctx context.Context, id string) error
	// sweep removes bytes older than cutoff whose id has no row, returning
	// how many uploads it removed.
	sweep(ctx context.Context, cutoff time.Time, exists func(context.Context, string) (bool, error)) (int, error)
}

// ---- local directory ----

// copyBufSize is the buffer a PATCH body is copied to disk through.
const copyBufSize = 256 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// localStore is tusd's filestore with two changes: request bodies are
// copied to the file through a 256 KiB buffer rather than io.Copy's 32 KiB
// (a 256 MiB upload over loopback makes a third fewer read and write
// system calls), and the lock gate learns when writing starts.
type localStore struct {
	filestore.FileStore
	gate *gatedLocker
}

type localUpload struct {
	handler.Upload
	id   string
	gate *gatedLocker
}

func (s localStore) NewUpload(ctx context.Context, info handler.FileInfo) (handler.Upload, error) {
	up, err := s.FileStore.NewUpload(ctx, info)
	if err != nil {
		return nil, err
	}
	return localUpload{up, info.ID, s.gate}, nil
}

func (s localStore) GetUpload(ctx context.Context, id string) (handler.Upload, error) {
	up, err := s.FileStore.GetUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	return localUpload{up, id, s.gate}, nil
}

func (s localStore) AsTerminatableUpload(up handler.Upload) handler.TerminatableUpload {
	return s.FileStore.AsTerminatableUpload(up.(localUpload).Upload)
}

func (s localStore) AsServableUpload(up handler.Upload) handler.ServableUpload {
	return s.FileStore.AsServableUpload(up.(localUpload).Upload)
}

func (u localUpload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	u.gate.writing(u.id)
	return u.Upload.WriteChunk(ctx, offset, bigBufReader{src})
}

// bigBufReader makes io.Copy (which the filestore uses) copy through a
// pooled large buffer: io.Copy prefers the source's WriteTo.
type bigBufReader struct{ r io.Reader }

func (b bigBufReader) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b bigBufReader) WriteTo(w io.Writer) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// Both sides hidden: *os.File's ReadFrom would copy through 32 KiB.
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{b.r}, *bp)
}

type localBackend struct {
	store localStore
	dir   string
}

func newLocalBackend(dir string) (uploadBackend, handler.Locker, error) {
	if dir == "" {
		return nil, nil, errors.New("media: uploads: neither a directory nor S3 configured")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("media: uploads: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, nil, fmt.Errorf("media: uploads: %w", err)
	}
	st := filestore.New(abs)
	st.DirModePerm, st.FileModePerm = 0o700, 0o600
	// A file lock works across processes sharing the directory (the
	// server and a worker running ExpireAbandoned). Short polls: a request
	// that wants the lock of an interrupted PATCH gets it within ~0.3 s.
	locker := filelocker.New(abs)
	locker.HolderPollInterval = 250 * time.Millisecond
	locker.AcquirerPollInterval = 50 * time.Millisecond
	gate := newGatedLocker(locker)
	return &localBackend{store: localStore{st, gate}, dir: abs}, gate, nil
}

func (b *localBackend) useIn(c *handler.StoreComposer) {
	c.UseCore(b.store)
	c.UseTerminater(b.store)
	c.UseContentServer(b.store)
}

func (b *localBackend) info(ctx context.Context, id string) (handler.FileInfo, error) {
	up, err := b.store.GetUpload(ctx, id)
	if err != nil {
		return handler.FileInfo{}, err
	}
	return up.GetInfo(ctx)
}

func (b *localBackend) open(ctx context.Context, id string) (io.ReadCloser, error) {
	f, err := os.Open(b.localPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrUploadNotFound
	}
	return f, err
}

func (b *localBackend) localPath(id string) string { return filepath.Join(b.dir, id) }

// remove deletes both files by name, so that it also works after the
// claimer renamed the data file away.
func (b *localBackend) remove(ctx context.Context, id string) error {
	var errs []error
	for _, p := range []string{b.localPath(id), b.localPath(id) + ".info"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *localBackend) sweep(ctx context.Context, cutoff time.Time, exists func(context.Context, string) (bool, error)) (int, error) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return 0, err
	}
	old := map[string]bool{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		id := strings.TrimSuffix(e.Name(), ".info")
		if !validUploadID(id) || old[id] {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		old[id] = true
	}
	n := 0
	for id := range old {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		ok, err := exists(ctx, id)
		if err != nil {
			return n, err
		}
		if ok {
			continue
		}
		if err := b.remove(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ---- S3 ----

// UploadsS3 says where in S3 uploads are stored.
type UploadsS3 struct {
	Endpoint  string // host:port; empty means AWS
	Region    string // us-east-1 when empty (and not learnt from a blob store)
	Bucket    string
	AccessKey string
	SecretKey string
	Secure    bool // HTTPS
	PathStyle bool // endpoint/bucket/key rather than bucket.endpoint/key
	// Prefix is where in the bucket uploads live, "uploads/" by default:
	// "<prefix><id>" is the finished object, "<prefix><id>.info" tusd's
	// metadata, "<prefix><id>.part" a pending part under 5 MiB.
	Prefix string
	// PartSize is the size of the multipart parts (16 MiB by default, at
	// least 5 MiB); each is written to a temporary file before it is sent.
	PartSize int64
	// TempDir holds those temporary files: UploadsConfig.Dir/tmp when Dir
	// is set, else the system's temporary directory.
	TempDir string

	regionFrom func(ctx context.Context) (string, error)
}

// UploadsS3FromBlob returns settings that store uploads in the bucket of a
// blob store, under "uploads/" at the root of the bucket (the blob store's
// own key prefix is not applied). The endpoint, credentials and region are
// the blob store's; path-style addressing is used except on endpoints
// known to support virtual hosts (AWS, Google).
func UploadsS3FromBlob(s *blob.S3) *UploadsS3 {
	c := s.Client()
	ep := c.EndpointURL()
	creds, _ := c.GetCreds()
	bucket := s.Bucket()
	return &UploadsS3{
		Endpoint:   ep.Host,
		Secure:     ep.Scheme == "https",
		Bucket:     bucket,
		AccessKey:  creds.AccessKeyID,
		SecretKey:  creds.SecretAccessKey,
		PathStyle:  !s3utils.IsVirtualHostSupported(*ep, bucket),
		regionFrom: func(ctx context.Context) (string, error) { return c.GetBucketLocation(ctx, bucket) },
	}
}

// UploadsS3FromURL parses a storage URL in blob.Open's s3:// form (see
// there) into upload settings, as UploadsS3FromBlob does.
func UploadsS3FromURL(ctx context.Context, storageURL, accessKey, secretKey string) (*UploadsS3, error) {
	st, err := blob.Open(ctx, storageURL, accessKey, secretKey)
	if err != nil {
		return nil, err
	}
	s, ok := st.(*blob.S3)
	if !ok {
		return nil, errors.New("media: uploads: not an s3:// storage URL")
	}
	return UploadsS3FromBlob(s), nil
}

// s3Backend keeps our ids in URLs although tusd's s3store names an upload
// "<object id>+<multipart upload id>": it maps our id to tusd's through a
// cache and, on a miss, the "<id>.info" object tusd writes.
type s3Backend struct {
	store  s3store.S3Store
	client *s3.Client
	bucket string
	prefix string
	gate   *gatedLocker

	mu  sync.Mutex
	ids map[string]string // our id → tusd's id
}

func newS3Backend(ctx context.Context, cfg *UploadsS3, tempDir string) (uploadBackend, handler.Locker, error) {
	if cfg.Bucket == "" {
		return nil, nil, errors.New("media: uploads: S3 without a bucket")
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, nil, errors.New("media: uploads: S3 without credentials")
	}
	region := cfg.Region
	if region == "" && cfg.regionFrom != nil {
		r, err := cfg.regionFrom(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("media: uploads: region of bucket %s: %w", cfg.Bucket, err)
		}
		region = r
	}
	if region == "" {
		region = "us-east-1"
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "uploads/"
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = 16 << 20
	}
	if partSize < 5<<20 || partSize > 5<<30 {
		return nil, nil, fmt.Errorf("media: uploads: S3 part size %d out of range [5 MiB, 5 GiB]", partSize)
	}
	ak, sk := cfg.AccessKey, cfg.SecretKey
	opts := s3.Options{
		Region:       region,
		UsePathStyle: cfg.PathStyle,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk, Source: "plaza"}, nil
		}),
		// Checksums only where S3 demands them: S3-compatible servers
		// differ in their support of the newer trailing checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		scheme := "https"
		if !cfg.Secure {
			scheme = "http"
		}
		opts.BaseEndpoint = aws.String(scheme + "://" + cfg.Endpoint)
	}
	client := s3.New(opts)
	store := s3store.New(cfg.Bucket, client)
	store.ObjectPrefix = prefix
	store.MetadataObjectPrefix = prefix
	store.PreferredPartSize = partSize
	store.MinPartSize = 5 << 20
	store.MaxBufferedParts = 4
	store.TemporaryDirectory = tempDir
	// One process serializes the requests of an upload. Several servers
	// sharing a bucket need the requests of one upload routed to one of
	// them (tusd's s3store does no conditional writes of its own).
	gate := newGatedLocker(memorylocker.New())
	b := &s3Backend{store: store, client: client, bucket: cfg.Bucket, prefix: prefix, gate: gate, ids: map[string]string{}}
	return b, gate, nil
}

func (b *s3Backend) useIn(c *handler.StoreComposer) {
	c.UseCore(b)
	c.UseTerminater(b)
	c.UseContentServer(b)
}

func (b *s3Backend) remember(id, tusID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ids) >= 100_000 {
		clear(b.ids) // bounded; misses are one GET each
	}
	b.ids[id] = tusID
}

func (b *s3Backend) forget(id string) {
	b.mu.Lock()
	delete(b.ids, id)
	b.mu.Unlock()
}

// resolve returns tusd's id for our id; handler.ErrNotFound when the
// bucket has no such upload.
func (b *s3Backend) resolve(ctx context.Context, id string) (string, error) {
	b.mu.Lock()
	tusID, ok := b.ids[id]
	b.mu.Unlock()
	if ok {
		return tusID, nil
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(b.prefix + id + ".info")})
	if err != nil {
		if isS3NotFound(err) {
			return "", handler.ErrNotFound
		}
		return "", err
	}
	defer out.Body.Close()
	var info struct{ ID string }
	if err := json.NewDecoder(io.LimitReader(out.Body, 1<<20)).Decode(&info); err != nil {
		return "", fmt.Errorf("media: upload %s: bad info object: %w", id, err)
	}
	if !strings.HasPrefix(info.ID, id+"+") {
		return "", handler.ErrNotFound
	}
	b.remember(id, info.ID)
	return info.ID, nil
}

func isS3NotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}

// s3Upload shows tusd our id instead of the s3store's.
type s3Upload struct {
	handler.Upload
	id   string
	gate *gatedLocker
}

func (u s3Upload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	u.gate.writing(u.id)
	return u.Upload.WriteChunk(ctx, offset, src)
}

func (u s3Upload) GetInfo(ctx context.Context) (handler.FileInfo, error) {
	info, err := u.Upload.GetInfo(ctx)
	info.ID = u.id
	return info, err
}

// NewUpload implements handler.DataStore.
func (b *s3Backend) NewUpload(ctx context.Context, info handler.FileInfo) (handler.Upload, error) {
	id := info.ID
	if !validUploadID(id) {
		return nil, errors.New("media: upload created without our id")
	}
	up, err := b.store.NewUpload(ctx, info)
	if err != nil {
		return nil, err
	}
	full, err := up.GetInfo(ctx) // cached by the s3store: no request
	if err != nil {
		return nil, err
	}
	b.remember(id, full.ID)
	return s3Upload{up, id, b.gate}, nil
}

// GetUpload implements handler.DataStore.
func (b *s3Backend) GetUpload(ctx context.Context, id string) (handler.Upload, error) {
	tusID, err := b.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	up, err := b.store.GetUpload(ctx, tusID)
	if err != nil {
		return nil, err
	}
	return s3Upload{up, id, b.gate}, nil
}

type s3Terminatable struct {
	handler.TerminatableUpload
	b  *s3Backend
	id string
}

func (t s3Terminatable) Terminate(ctx context.Context) error {
	defer t.b.forget(t.id)
	return t.TerminatableUpload.Terminate(ctx)
}

// AsTerminatableUpload implements handler.TerminaterDataStore.
func (b *s3Backend) AsTerminatableUpload(up handler.Upload) handler.TerminatableUpload {
	u := up.(s3Upload)
	return s3Terminatable{b.store.AsTerminatableUpload(u.Upload), b, u.id}
}

// AsServableUpload implements handler.ContentServerDataStore.
func (b *s3Backend) AsServableUpload(up handler.Upload) handler.ServableUpload {
	return b.store.AsServableUpload(up.(s3Upload).Upload)
}

func (b *s3Backend) info(ctx context.Context, id string) (handler.FileInfo, error) {
	up, err := b.GetUpload(ctx, id)
	if err != nil {
		return handler.FileInfo{}, err
	}
	return up.GetInfo(ctx)
}

func (b *s3Backend) open(ctx context.Context, id string) (io.ReadCloser, error) {
	up, err := b.GetUpload(ctx, id)
	if errors.Is(err, handler.ErrNotFound) {
		return nil, ErrUploadNotFound
	}
	if err != nil {
		return nil, err
	}
	r, err := up.GetReader(ctx)
	if errors.Is(err, handler.ErrNotFound) {
		return nil, ErrUploadNotFound
	}
	return r, err
}

func (b *s3Backend) localPath(string) string { return "" }

func (b *s3Backend) remove(ctx context.Context, id string) error {
	defer b.forget(id)
	tusID, err := b.resolve(ctx, id)
	if errors.Is(err, handler.ErrNotFound) {
		// No info object: delete whatever else may be left. An unfinished
		// multipart upload without its info object is left to the bucket's
		// AbortIncompleteMultipartUpload lifecycle rule.
		_, err = b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &b.bucket,
			Delete: &types.Delete{Quiet: aws.Bool(true), Objects: []types.ObjectIdentifier{
				{Key: aws.String(b.prefix + id)},
				{Key: aws.String(b.prefix + id + ".part")},
			}},
		})
		return err
	}
	if err != nil {
		return err
	}
	up, err := b.store.GetUpload(ctx, tusID)
	if err != nil {
		return err
	}
	return b.store.AsTerminatableUpload(up).Terminate(ctx)
}

// sweep has nothing to do on S3: a crash between the database and the
// bucket leaves objects for the bucket's lifecycle rules.
func (b *s3Backend) sweep(context.Context, time.Time, func(context.Context, string) (bool, error)) (int, error) {
	return 0, nil
}
