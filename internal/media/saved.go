package media

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"plaza/internal/blob"
)

// ErrStorage wraps failures of the blob store (as opposed to problems with
// the image itself).
var ErrStorage = errors.New("media: storage failed")

// SavedImage is a processed image in storage.
type SavedImage struct {
	Key      string // the main image
	ThumbKey string
	*Image
}

// SaveImage processes r (see ProcessImage) and stores the main image and
// its thumbnail under prefix with random names, so URLs are unguessable and
// never change content (they can be cached forever).
func SaveImage(ctx context.Context, store blob.Store, r io.Reader, maxBytes int64, opt ImageOptions, prefix string) (SavedImage, error) {
	img, err := ProcessImage(ctx, r, maxBytes, opt)
	if err != nil {
		return SavedImage{}, err
	}
	key := prefix + "/" + randomName() + img.Ext
	s := SavedImage{Key: key, ThumbKey: ThumbKey(key), Image: img}
	if err := store.Put(ctx, s.Key, strings.NewReader(string(img.Main)), int64(len(img.Main)), img.ContentType); err != nil {
		return SavedImage{}, fmt.Errorf("%w: store image: %w", ErrStorage, err)
	}
	if err := store.Put(ctx, s.ThumbKey, strings.NewReader(string(img.Thumb)), int64(len(img.Thumb)), img.ContentType); err != nil {
		_ = store.Delete(context.WithoutCancel(ctx), s.Key)
		return SavedImage{}, fmt.Errorf("%w: store thumbnail: %w", ErrStorage, err)
	}
	return s, nil
}

// ThumbKey is the key of the thumbnail stored beside an image key.
func ThumbKey(key string) string {
	dot := strings.LastIndexByte(key, '.')
	if dot < 0 || strings.ContainsRune(key[dot:], '/') {
		return key + "_thumb"
	}
	return key[:dot] + "_thumb" + key[dot:]
}

// DeleteImages removes images and their thumbnails, best effort: a
// leftover file costs storage, never correctness.
func DeleteImages(ctx context.Context, store blob.Store, keys ...string) error {
	var errs []error
	for _, k := range keys {
		if k == "" {
			continue
		}
		errs = append(errs, store.Delete(ctx, k), store.Delete(ctx, ThumbKey(k)))
	}
	return errors.Join(errs...)
}

func randomName() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("media: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}
