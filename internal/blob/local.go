package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Local permissions: blobs are readable by the group (e.g. a web server
// serving the directory), never by others.
const (
	localFileMode fs.FileMode = 0o640
	localDirMode  fs.FileMode = 0o750
)

// Local stores blobs as files under one directory, each key its relative
// path. Put writes a temporary file in the key's directory, syncs it and
// renames it into place, so readers see the old or the new blob, never a
// partial one; a crash can leave a ".plaza-tmp-*" file behind, which List
// never shows.
//
// Every file operation goes through an os.Root, so no key, and no symbolic
// link planted inside the directory, can make the store read, write or
// delete anything outside it: a key that resolves outside fails with
// ErrInvalidKey. Symbolic links that stay inside are followed by Open and
// Stat but not by List or DeletePrefix.
//
// Content types are not stored: Info.ContentType is always
// ContentTypeFor(key), and Put's contentType is ignored. Info.ETag is
// derived from the file's size, modification time and inode number.
//
// Several processes (serve and worker) may share one directory.
type Local struct {
	dir  string // absolute, symbolic links resolved
	root *os.Root
}

var _ Store = (*Local)(nil)

// NewLocal opens (creating it if needed, mode 0750) the directory dir.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("blob: local store needs a directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: local store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, localDirMode); err != nil {
		return nil, fmt.Errorf("blob: local store: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("blob: local store: %w", err)
	}
	root, err := os.OpenRoot(resolved)
	if err != nil {
		return nil, fmt.Errorf("blob: local store: %w", err)
	}
	return &Local{dir: resolved, root: root}, nil
}

// Dir returns the store's absolute directory, symbolic links resolved.
func (l *Local) Dir() string { return l.dir }

// Close releases the directory handle. The store is unusable afterwards.
func (l *Local) Close() error { return l.root.Close() }

// errPathEscapes is the text of the (unexported) error os.Root returns
// for a path that leaves the root.
const errPathEscapes = "path escapes from parent"

// fail turns an os error for key into the package's error vocabulary:
// ErrInvalidKey for a path that leaves the directory and, except for "put",
// ErrNotFound for a missing file or a file where a directory should be.
func fail(op, key string, err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == errPathEscapes {
			return fmt.Errorf("%w: %s %q: resolves outside the store directory", ErrInvalidKey, op, key)
		}
	}
	if op != "put" && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
		return fmt.Errorf("%w: %s %q", ErrNotFound, op, key)
	}
	return fmt.Errorf("blob: %s %q: %w", op, key, err)
}

// bufPool holds copy buffers for Put: big enough for few syscalls, small
// enough that many concurrent uploads cost little.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Put implements Store. contentType is ignored (see Local).
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (err error) {
	if !ValidKey(key) {
		return invalidKey(key)
	}
	if size < -1 {
		return fmt.Errorf("blob: put %q: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: put %q: %w", key, err)
	}
	tmp, f, err := l.createTemp(path.Dir(key))
	if err != nil {
		return fail("put", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			l.root.Remove(tmp)
		}
	}()
	bp := bufPool.Get().(*[]byte)
	// writerOnly hides f.ReadFrom, which would fall back to io.Copy with a
	// fresh buffer for a reader that is not a file or socket.
	_, err = io.CopyBuffer(writerOnly{f}, &exactReader{r: &ctxReader{ctx: ctx, r: r}, want: size}, *bp)
	bufPool.Put(bp)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("blob: put %q: %w", key, err)
	}
	// Last chance to honour a cancellation before the blob becomes visible.
	if err = ctx.Err(); err != nil {
		return fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err = l.root.Rename(tmp, key); err != nil {
		return fail("put", key, err)
	}
	return nil
}

type writerOnly struct{ io.Writer }

// createTemp creates a new temporary file in dir (made if missing). It
// retries when a concurrent Delete prunes the freshly made directory.
func (l *Local) createTemp(dir string) (string, *os.File, error) {
	var b [12]byte
	var err error
	for range 5 {
		if dir != "." {
			if err = l.root.MkdirAll(dir, localDirMode); err != nil {
				return "", nil, err
			}
		}
		rand.Read(b[:])
		name := path.Join(dir, tempPrefix+hex.EncodeToString(b[:]))
		var f *os.File
		f, err = l.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, localFileMode)
		if err == nil {
			return name, f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
	}
	return "", nil, err
}

// info describes the file fi holding key.
func localInfo(key string, fi fs.FileInfo) Info {
	return Info{
		Key:         key,
		Size:        fi.Size(),
		ContentType: ContentTypeFor(key),
		ModTime:     fi.ModTime().UTC(),
		ETag:        localETag(fi),
	}
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, key string) (Info, error) {
	if !ValidKey(key) {
		return Info{}, invalidKey(key)
	}
	fi, err := l.root.Stat(key)
	if err != nil {
		return Info{}, fail("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: stat %q", ErrNotFound, key)
	}
	return localInfo(key, fi), nil
}

// LocalObject is a blob opened from a Local store.
type LocalObject struct {
	f    *os.File
	info Info
}

var _ Object = (*LocalObject)(nil)

// Open implements Store. The Object is a *LocalObject.
func (l *Local) Open(ctx context.Context, key string) (Object, error) {
	if !ValidKey(key) {
		return nil, invalidKey(key)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blob: open %q: %w", key, err)
	}
	f, err := l.root.Open(key)
	if err != nil {
		return nil, fail("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fail("open", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: open %q", ErrNotFound, key)
	}
	return &LocalObject{f: f, info: localInfo(key, fi)}, nil
}

func (o *LocalObject) Read(p []byte) (int, error)                   { return o.f.Read(p) }
func (o *LocalObject) ReadAt(p []byte, off int64) (int, error)      { return o.f.ReadAt(p, off) }
func (o *LocalObject) Seek(offset int64, whence int) (int64, error) { return o.f.Seek(offset, whence) }
func (o *LocalObject) Close() error                                 { return o.f.Close() }

// Info implements Object.
func (o *LocalObject) Info() Info { return o.info }

// File returns the open file, for http.ServeContent to send with
// sendfile(2). It shares the object's offset; closing the object closes it.
func (o *LocalObject) File() *os.File { return o.f }

// Delete implements Store. Directories left empty are removed.
func (l *Local) Delete(ctx context.Context, key string) error {
	if !ValidKey(key) {
		return invalidKey(key)
	}
	fi, err := l.root.Lstat(key)
	if err != nil {
		if err := fail("delete", key, err); !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	}
	if fi.IsDir() {
		return nil // a "directory" is no blob; see DeletePrefix
	}
	if err := l.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail("delete", key, err)
	}
	l.prune(path.Dir(key))
	return nil
}

// prune removes dir and its parents while they are empty directories.
func (l *Local) prune(dir string) {
	for dir != "." && dir != "/" {
		fi, err := l.root.Lstat(dir)
		if err != nil || !fi.IsDir() || l.root.Remove(dir) != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

// DeletePrefix implements Store. It removes the directory prefix/ and
// everything in it (symbolic links themselves, never their targets).
func (l *Local) DeletePrefix(ctx context.Context, prefix string) error {
	p, err := cleanPrefix(prefix, false)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: delete prefix %q: %w", prefix, err)
	}
	fi, err := l.root.Lstat(p)
	if err != nil {
		if err := fail("delete prefix", p, err); !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	}
	if !fi.IsDir() {
		return nil
	}
	if err := l.root.RemoveAll(p); err != nil {
		return fail("delete prefix", p, err)
	}
	l.prune(path.Dir(p))
	return nil
}

// List implements Store: every blob under prefix/ (everything for ""),
// sorted by key.
func (l *Local) List(ctx context.Context, prefix string) ([]Info, error) {
	p, err := cleanPrefix(prefix, true)
	if err != nil {
		return nil, err
	}
	start := "."
	if p != "" {
		start = p
		fi, err := l.root.Lstat(p)
		if err != nil {
			if err := fail("list", p, err); !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			return []Info{}, nil
		}
		if !fi.IsDir() {
			return []Info{}, nil
		}
	}
	out := []Info{}
	err = fs.WalkDir(l.root.FS(), start, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, localInfo(name, fi))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob: list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// PresignGet implements Store: a local directory cannot presign, so it
// returns "".
func (l *Local) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if !ValidKey(key) {
		return "", invalidKey(key)
	}
	return "", nil
}

// LocalPath implements Store. It returns the resolved path of key's file
// when key is valid and names a regular file inside the directory (after
// following symbolic links), else "", false; callers fall back to Open,
// which reports the reason. Prefer LocalObject.File where possible: a path
// can be swapped between this check and its use, an open file cannot.
func (l *Local) LocalPath(key string) (string, bool) {
	if !ValidKey(key) {
		return "", false
	}
	fi, err := l.root.Stat(key) // fails for links that leave the root
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	p, err := filepath.EvalSymlinks(filepath.Join(l.dir, filepath.FromSlash(key)))
	if err != nil {
		return "", false
	}
	if rel, err := filepath.Rel(l.dir, p); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return p, true
}

// Ping implements Store: the directory must still exist and be a
// directory.
func (l *Local) Ping(ctx context.Context) error {
	fi, err := l.root.Stat(".")
	if err != nil {
		return fmt.Errorf("blob: local store %s: %w", l.dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("blob: local store %s is not a directory", l.dir)
	}
	return nil
}
