package media

// Image pipeline: profile pictures, cover images and post images.
//
// Uploaded files are hostile. The pipeline therefore
//
//   - reads at most maxBytes of input,
//   - identifies the format from magic bytes only (never the name or the
//     claimed content type) and uses that format's decoder only, so formats
//     registered elsewhere in the process (BMP, TIFF, ...) are never reached,
//   - checks the declared dimensions with the format's DecodeConfig before any
//     pixel buffer is allocated (decompression bombs),
//   - decodes, crops and scales, applies the JPEG EXIF orientation, and
//     re-encodes from pixels, so no metadata of the input (EXIF with GPS and
//     camera data, XMP, ICC profiles, comments, trailing data, ...) survives.
//
// Memory. Beyond the input bytes, a decode holds the decoded source image
// (about 1.5 B/pixel for a 4:2:0 JPEG, 3 B/pixel for 4:4:4, 4 B/pixel for
// CMYK JPEGs, 8-bit RGBA PNGs and WebP with alpha, 8 B/pixel for 16-bit RGBA
// PNGs; progressive JPEGs additionally keep about 4 B per coefficient, i.e.
// 6–12 B/pixel) plus small, bounded working buffers: scaling is done in two
// separable Catmull-Rom passes in strips, so the intermediate buffer is
// FitSide x source height x 4 bytes instead of the 32 B per
// destination-width x source-height that a single x/image/draw kernel Scale
// allocates. A 12 MP 4:2:0 JPEG needs roughly 60–80 MB in total; the default
// 40 MP limit allows a worst case of a few hundred MB for a 16-bit or
// progressive file, so callers should bound the number of concurrent calls
// (for example with a semaphore sized to the worker's memory).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

var (
	// ErrNotImage: the bytes are not a JPEG, PNG, GIF or WebP image, or the
	// image is corrupt or truncated (decoder errors are wrapped alongside it).
	ErrNotImage = errors.New("media: not a supported image")
	// ErrImageTooLarge: the declared dimensions exceed the pixel or side limit.
	ErrImageTooLarge = errors.New("media: image dimensions too large")
	// ErrImageFileTooLarge: the input has more than maxBytes bytes. It is
	// distinct from ErrImageTooLarge so that HTTP handlers can answer 413 for
	// it and 400 for the dimension limits if they wish.
	ErrImageFileTooLarge = errors.New("media: image file too large")
)

// Defaults used by ProcessImage for zero (or negative) option values.
const (
	DefaultImageMaxBytes  = 32 << 20 // used when maxBytes <= 0
	DefaultImageMaxPixels = 40_000_000
	DefaultImageMaxSide   = 16384
	DefaultImageFitSide   = 2048
	DefaultImageThumbSide = 400

	imageJPEGQuality = 85
	// imageStrip is the number of rows (or columns) scaled per x/image/draw
	// call; it bounds the scaler's float64 working buffer.
	imageStrip = 64
	// Blurhash components.
	imageBlurhashX = 4
	imageBlurhashY = 3
)

// ImageOptions configures ProcessImage. Zero values mean the defaults.
type ImageOptions struct {
	MaxPixels int64 // default 40_000_000, checked with DecodeConfig BEFORE decoding
	MaxSide   int   // default 16384: either dimension over it is refused
	FitSide   int   // the stored image is scaled down to fit FitSide x FitSide (default 2048); never scaled up
	ThumbSide int   // thumbnail fits ThumbSide x ThumbSide (default 400)
	Square    bool  // crop the centre square first (avatars); takes precedence over Aspect
	// Aspect, if > 0 and finite, crops the centre to this width/height ratio
	// first (covers use 3.0).
	Aspect float64
}

func (o ImageOptions) withDefaults() ImageOptions {
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultImageMaxPixels
	}
	if o.MaxSide <= 0 {
		o.MaxSide = DefaultImageMaxSide
	}
	if o.FitSide <= 0 {
		o.FitSide = DefaultImageFitSide
	}
	if o.ThumbSide <= 0 {
		o.ThumbSide = DefaultImageThumbSide
	}
	return o
}

// checkDims refuses empty and oversized dimensions.
func (o ImageOptions) checkDims(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: empty image (%dx%d)", ErrNotImage, w, h)
	}
	if w > o.MaxSide || h > o.MaxSide || int64(w)*int64(h) > o.MaxPixels {
		return fmt.Errorf("%w: %dx%d (limits: %d pixels, %d per side)",
			ErrImageTooLarge, w, h, o.MaxPixels, o.MaxSide)
	}
	return nil
}

// Image is the result of ProcessImage.
type Image struct {
	ContentType               string // "image/jpeg" or "image/png"
	Ext                       string // ".jpg" or ".png"
	Main, Thumb               []byte // re-encoded: no metadata of the input survives
	Width, Height             int    // of Main, after orientation
	ThumbWidth, ThumbHeight   int
	SourceWidth, SourceHeight int    // display size of the source (EXIF orientation applied)
	Blurhash                  string // 4x3 components, computed from the thumbnail
}

// SniffImage identifies an image format by its magic bytes only ("jpeg",
// "png", "gif", "webp"), never by name or claimed type. head should hold at
// least the first 16 bytes of the file.
func SniffImage(head []byte) (format string, ok bool) {
	switch {
	case len(head) >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF:
		return "jpeg", true
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return "png", true
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return "gif", true
	case len(head) >= 16 && string(head[0:4]) == "RIFF" && string(head[8:15]) == "WEBPVP8":
		return "webp", true
	}
	return "", false
}

// ProcessImage reads at most maxBytes from r (maxBytes <= 0 means
// DefaultImageMaxBytes; more input is an error wrapping ErrImageFileTooLarge),
// identifies the format with SniffImage (anything else: ErrNotImage), checks
// the declared dimensions against opt before decoding (ErrImageTooLarge),
// decodes (GIF: the first frame), applies the JPEG EXIF orientation, crops
// (opt.Square, opt.Aspect) and scales down to opt.FitSide, and re-encodes as
// JPEG (quality 85) when the result is opaque or PNG when it has transparency,
// with a thumbnail of the same format and a 4x3 blurhash.
//
// Corrupt or truncated images give an error wrapping ErrNotImage and the
// decoder's error. A cancelled ctx is noticed while reading, decoding and
// scaling, and its error is returned.
func ProcessImage(ctx context.Context, r io.Reader, maxBytes int64, opt ImageOptions) (*Image, error) {
	opt = opt.withDefaults()
	if maxBytes <= 0 {
		maxBytes = DefaultImageMaxBytes
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := imageReadAll(ctx, r, maxBytes)
	if err != nil {
		return nil, err
	}
	format, ok := SniffImage(data)
	if !ok {
		return nil, ErrNotImage
	}
	cfg, err := imageDecodeConfig(format, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %w", ErrNotImage, format, err)
	}
	if err := opt.checkDims(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	orientation := 1
	if format == "jpeg" {
		orientation = jpegExifOrientation(data)
	}
	src, err := imageDecode(&imageCtxReader{ctx: ctx, r: bytes.NewReader(data)}, format)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("%w: decoding %s: %w", ErrNotImage, format, err)
	}
	sb := src.Bounds()
	// Defensive: the decoders allocate from the header we checked, but make
	// sure what came out respects the limits too.
	if err := opt.checkDims(sb.Dx(), sb.Dy()); err != nil {
		return nil, err
	}

	// Display geometry (after orientation) and the crop and fit computed in it.
	swap := orientation >= 5 // orientations 5-8 transpose the image
	dw, dh := sb.Dx(), sb.Dy()
	if swap {
		dw, dh = dh, dw
	}
	cw, ch := imageCropSize(dw, dh, opt)
	tw, th := imageFitSize(cw, ch, opt.FitSide)
	// The same in source orientation: centred crops are symmetric under the
	// EXIF transforms, so mapping them only swaps the sizes.
	scw, sch, stw, sth := cw, ch, tw, th
	if swap {
		scw, sch, stw, sth = ch, cw, th, tw
	}
	crop := image.Rect(0, 0, scw, sch).Add(sb.Min).Add(image.Pt((sb.Dx()-scw)/2, (sb.Dy()-sch)/2))

	opaque := imageOpaque(src, crop)
	scaled, err := imageResample(ctx, src, crop, stw, sth)
	if err != nil {
		return nil, err
	}
	main := imageOrient(scaled, orientation)
	thw, thh := imageFitSize(tw, th, opt.ThumbSide)
	thumb, err := imageResample(ctx, main, main.Bounds(), thw, thh)
	if err != nil {
		return nil, err
	}

	out := &Image{
		Width: tw, Height: th,
		ThumbWidth: thw, ThumbHeight: thh,
		SourceWidth: dw, SourceHeight: dh,
	}
	if opaque {
		out.ContentType, out.Ext = "image/jpeg", ".jpg"
	} else {
		out.ContentType, out.Ext = "image/png", ".png"
	}
	if out.Main, err = imageEncode(main, opaque); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if out.Thumb, err = imageEncode(thumb, opaque); err != nil {
		return nil, err
	}
	if out.Blurhash, err = EncodeBlurhash(thumb, imageBlurhashX, imageBlurhashY); err != nil {
		return nil, err
	}
	return out, nil
}

// imageCtxReader fails reads once ctx is done, so long reads and decodes
// (which read through it in small chunks) stop early.
type imageCtxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *imageCtxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func imageReadAll(ctx context.Context, r io.Reader, maxBytes int64) ([]byte, error) {
	limit := maxBytes
	if limit < math.MaxInt64 {
		limit++ // one byte more tells "exactly maxBytes" from "too much"
	}
	data, err := io.ReadAll(io.LimitReader(&imageCtxReader{ctx: ctx, r: r}, limit))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("media: reading image: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrImageFileTooLarge, maxBytes)
	}
	return data, nil
}

func imageDecodeConfig(format string, data []byte) (image.Config, error) {
	r := bytes.NewReader(data)
	switch format {
	case "jpeg":
		return jpeg.DecodeConfig(r)
	case "png":
		return png.DecodeConfig(r)
	case "gif":
		return gif.DecodeConfig(r)
	case "webp":
		return webp.DecodeConfig(r)
	}
	return image.Config{}, ErrNotImage
}

func imageDecode(r io.Reader, format string) (image.Image, error) {
	switch format {
	case "jpeg":
		return jpeg.Decode(r)
	case "png":
		return png.Decode(r)
	case "gif":
		return gif.Decode(r) // the first frame only
	case "webp":
		return webp.Decode(r)
	}
	return nil, ErrNotImage
}

// imageCropSize is the size of the centre crop of a w x h image requested by
// opt (w, h when none).
func imageCropSize(w, h int, opt ImageOptions) (int, int) {
	ratio := 0.0
	switch {
	case opt.Square:
		ratio = 1
	case opt.Aspect > 0 && !math.IsInf(opt.Aspect, 0):
		ratio = opt.Aspect
	default:
		return w, h
	}
	if float64(w) > float64(h)*ratio { // too wide: narrow it
		return min(max(int(math.Round(float64(h)*ratio)), 1), w), h
	}
	return w, min(max(int(math.Round(float64(w)/ratio)), 1), h)
}

// imageFitSize scales w x h down (never up) to fit side x side, keeping the
// aspect ratio; no side becomes smaller than 1.
func imageFitSize(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, int(math.Round(float64(h)*float64(side)/float64(w))))
	}
	return max(1, int(math.Round(float64(w)*float64(side)/float64(h)))), side
}

// imageOpaque reports whether the part sr of m is fully opaque. All standard
// library image types answer Opaque without allocating; anything else is
// treated as transparent (and so kept lossless as PNG).
func imageOpaque(m image.Image, sr image.Rectangle) bool {
	type opaquer interface{ Opaque() bool }
	if s, ok := m.(interface {
		SubImage(image.Rectangle) image.Image
	}); ok {
		m = s.SubImage(sr)
	}
	if o, ok := m.(opaquer); ok {
		return o.Opaque()
	}
	return false
}

// imageResample copies or scales the part sr of src to a new dw x dh RGBA
// image with Catmull-Rom. The scaling is separable and done in two passes
// (width, then height), each in strips along the axis it does not scale; on
// that axis the kernel is evaluated at whole pixels only and is exactly the
// identity, so strips join seamlessly. This bounds x/image/draw's float64
// working buffer to a strip instead of dw x sr.Dy() x 32 bytes.
func imageResample(ctx context.Context, src image.Image, sr image.Rectangle, dw, dh int) (*image.RGBA, error) {
	sw, sh := sr.Dx(), sr.Dy()
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	switch {
	case dw == sw && dh == sh:
		draw.Draw(dst, dst.Rect, src, sr.Min, draw.Src)
		return dst, nil
	case dh == sh:
		return dst, imageScaleWidth(ctx, dst, src, sr)
	case dw == sw:
		return dst, imageScaleHeight(ctx, dst, src, sr)
	}
	mid := image.NewRGBA(image.Rect(0, 0, dw, sh))
	if err := imageScaleWidth(ctx, mid, src, sr); err != nil {
		return nil, err
	}
	return dst, imageScaleHeight(ctx, dst, mid, mid.Rect)
}

// imageScaleWidth scales sr of src into dst, which has sr's height.
func imageScaleWidth(ctx context.Context, dst *image.RGBA, src image.Image, sr image.Rectangle) error {
	dw, sw, h := dst.Rect.Dx(), sr.Dx(), sr.Dy()
	var full draw.Scaler
	for y := 0; y < h; y += imageStrip {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(imageStrip, h-y)
		s := full
		if n != imageStrip || s == nil {
			s = draw.CatmullRom.NewScaler(dw, n, sw, n)
			if n == imageStrip {
				full = s
			}
		}
		s.Scale(dst, image.Rect(0, y, dw, y+n).Add(dst.Rect.Min), src,
			image.Rect(sr.Min.X, sr.Min.Y+y, sr.Max.X, sr.Min.Y+y+n), draw.Src, nil)
	}
	return nil
}

// imageScaleHeight scales sr of src into dst, which has sr's width.
func imageScaleHeight(ctx context.Context, dst *image.RGBA, src image.Image, sr image.Rectangle) error {
	dh, sh, w := dst.Rect.Dy(), sr.Dy(), sr.Dx()
	var full draw.Scaler
	for x := 0; x < w; x += imageStrip {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(imageStrip, w-x)
		s := full
		if n != imageStrip || s == nil {
			s = draw.CatmullRom.NewScaler(n, dh, n, sh)
			if n == imageStrip {
				full = s
			}
		}
		s.Scale(dst, image.Rect(x, 0, x+n, dh).Add(dst.Rect.Min), src,
			image.Rect(sr.Min.X+x, sr.Min.Y, sr.Min.X+x+n, sr.Max.Y), draw.Src, nil)
	}
	return nil
}

// imageOrient returns m transformed for display according to the EXIF
// orientation o (1-8); m itself for 1 or an unknown value.
func imageOrient(m *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return m
	}
	sw, sh := m.Rect.Dx(), m.Rect.Dy()
	dw, dh := sw, sh
	if o >= 5 {
		dw, dh = sh, sw
	}
	out := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for dy := 0; dy < dh; dy++ {
		row := out.Pix[dy*out.Stride : dy*out.Stride+dw*4]
		for dx := 0; dx < dw; dx++ {
			var sx, sy int
			switch o {
			case 2: // mirrored horizontally
				sx, sy = sw-1-dx, dy
			case 3: // rotated 180°
				sx, sy = sw-1-dx, sh-1-dy
			case 4: // mirrored vertically
				sx, sy = dx, sh-1-dy
			case 5: // transposed
				sx, sy = dy, dx
			case 6: // needs 90° clockwise rotation
				sx, sy = dy, sh-1-dx
			case 7: // transversed
				sx, sy = sw-1-dy, sh-1-dx
			case 8: // needs 90° counter-clockwise rotation
				sx, sy = sw-1-dy, dx
			}
			i := sy*m.Stride + sx*4
			copy(row[dx*4:dx*4+4], m.Pix[i:i+4])
		}
	}
	return out
}

func imageEncode(m *image.RGBA, opaque bool) ([]byte, error) {
	var buf bytes.Buffer
	if opaque {
		// Force full alpha so that scaling round-off can never darken JPEG
		// pixels (the JPEG encoder reads premultiplied values).
		for i := 3; i < len(m.Pix); i += 4 {
			m.Pix[i] = 0xff
		}
		if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: imageJPEGQuality}); err != nil {
			return nil, fmt.Errorf("media: encoding jpeg: %w", err)
		}
		return buf.Bytes(), nil
	}
	if err := png.Encode(&buf, m); err != nil {
		return nil, fmt.Errorf("media: encoding png: %w", err)
	}
	return buf.Bytes(), nil
}
