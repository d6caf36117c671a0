package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

func imgProcess(t *testing.T, data []byte, opt ImageOptions) *Image {
	t.Helper()
	out, err := ProcessImage(context.Background(), bytes.NewReader(data), int64(len(data)), opt)
	if err != nil {
		t.Fatalf("ProcessImage: %v", err)
	}
	return out
}

// imgCheckOutput checks the invariants every result must satisfy and returns
// the decoded main image.
func imgCheckOutput(t *testing.T, out *Image) image.Image {
	t.Helper()
	switch {
	case out.ContentType == "image/jpeg" && out.Ext == ".jpg":
	case out.ContentType == "image/png" && out.Ext == ".png":
	default:
		t.Fatalf("content type %q with extension %q", out.ContentType, out.Ext)
	}
	main := imgDecodeOutput(t, out.ContentType, out.Main)
	if b := main.Bounds(); b.Dx() != out.Width || b.Dy() != out.Height {
		t.Errorf("main is %v, reported %dx%d", b, out.Width, out.Height)
	}
	thumb := imgDecodeOutput(t, out.ContentType, out.Thumb)
	if b := thumb.Bounds(); b.Dx() != out.ThumbWidth || b.Dy() != out.ThumbHeight {
		t.Errorf("thumb is %v, reported %dx%d", b, out.ThumbWidth, out.ThumbHeight)
	}
	if len(out.Blurhash) != 28 || out.Blurhash[0] != 'L' {
		t.Errorf("blurhash %q: want 28 characters starting with L (4x3)", out.Blurhash)
	}
	return main
}

func TestSniffImage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, head, want string
	}{
		{"jpeg", "\xFF\xD8\xFF\xE0\x00\x10JFIF", "jpeg"},
		{"png", "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "png"},
		{"gif87", "GIF87a\x01\x00", "gif"},
		{"gif89", "GIF89a\x01\x00", "gif"},
		{"webp", "RIFF\x10\x00\x00\x00WEBPVP8 \x00", "webp"},
		{"webp lossless", "RIFF\x10\x00\x00\x00WEBPVP8L\x00", "webp"},
		{"wave", "RIFF\x10\x00\x00\x00WAVEfmt \x00", ""},
		{"short webp", "RIFF\x10\x00\x00\x00WEBP", ""},
		{"empty", "", ""},
		{"jpeg prefix only", "\xFF\xD8", ""},
		{"png without tail", "\x89PNG", ""},
		{"bmp", "BM\x46\x00\x00\x00\x00\x00", ""},
		{"tiff", "II*\x00\x08\x00\x00\x00", ""},
		{"svg", "<svg xmlns=\"http://www.w3.org/2000/svg\">", ""},
		{"pdf", "%PDF-1.7\n", ""},
	}
	for _, c := range cases {
		got, ok := SniffImage([]byte(c.head))
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: SniffImage = %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
}

func TestProcessImageFormats(t *testing.T) {
	t.Parallel()
	quad := imgQuadrants(300, 200)
	alpha := image.NewNRGBA(image.Rect(0, 0, 120, 80))
	for y := 0; y < 80; y++ {
		for x := 0; x < 120; x++ {
			if x < 60 {
				alpha.SetNRGBA(x, y, imgRed)
			} else {
				alpha.SetNRGBA(x, y, imgClear)
			}
		}
	}
	gifAlpha := imgQuadrants(120, 80)
	for y := 0; y < 80; y++ {
		for x := 60; x < 120; x++ {
			gifAlpha.SetNRGBA(x, y, imgClear)
		}
	}
	cases := []struct {
		name        string
		data        []byte
		contentType string
		w, h        int
		quadrants   bool
	}{
		{"jpeg", imgJPEG(t, quad), "image/jpeg", 300, 200, true},
		{"opaque png becomes jpeg", imgPNG(t, quad), "image/jpeg", 300, 200, true},
		{"png with alpha stays png", imgPNG(t, alpha), "image/png", 120, 80, false},
		{"gif", imgGIF(t, quad, false), "image/jpeg", 300, 200, true},
		{"gif with transparency", imgGIF(t, gifAlpha, true), "image/png", 120, 80, false},
		{"webp lossy", imgTestdata(t, "image-lossy.webp"), "image/jpeg", 150, 100, false},
		{"webp lossless alpha", imgTestdata(t, "image-lossless-alpha.webp"), "image/png", 75, 100, false},
		{"webp vp8x alpha", imgTestdata(t, "image-lossy-alpha.webp"), "image/png", 400, 301, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := imgProcess(t, c.data, ImageOptions{})
			main := imgCheckOutput(t, out)
			if out.ContentType != c.contentType {
				t.Errorf("content type %q, want %q", out.ContentType, c.contentType)
			}
			if out.Width != c.w || out.Height != c.h || out.SourceWidth != c.w || out.SourceHeight != c.h {
				t.Errorf("main %dx%d source %dx%d, want %dx%d (no upscaling, no crop)",
					out.Width, out.Height, out.SourceWidth, out.SourceHeight, c.w, c.h)
			}
			tw, th := imageFitSize(c.w, c.h, DefaultImageThumbSide)
			if out.ThumbWidth != tw || out.ThumbHeight != th {
				t.Errorf("thumb %dx%d, want %dx%d", out.ThumbWidth, out.ThumbHeight, tw, th)
			}
			if c.quadrants {
				if !imgNear(main.At(5, 5), imgRed, 24) || !imgNear(main.At(c.w-5, c.h-5), imgWhite, 24) {
					t.Errorf("colours: top-left %v, bottom-right %v", main.At(5, 5), main.At(c.w-5, c.h-5))
				}
			}
		})
	}
}

func TestProcessImageMoreSourceKinds(t *testing.T) {
	t.Parallel()
	// Animated GIF: the first frame is used.
	frame := func(c color.Color) *image.Paletted {
		p := image.NewPaletted(image.Rect(0, 0, 30, 20), color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}})
		for i := range p.Pix {
			if c == imgBlue {
				p.Pix[i] = 1
			}
		}
		return p
	}
	var anim bytes.Buffer
	if err := gif.EncodeAll(&anim, &gif.GIF{Image: []*image.Paletted{frame(imgRed), frame(imgBlue)}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	out := imgProcess(t, anim.Bytes(), ImageOptions{})
	main := imgCheckOutput(t, out)
	if out.ContentType != "image/jpeg" || out.Width != 30 || out.Height != 20 || !imgNear(main.At(15, 10), imgRed, 24) {
		t.Errorf("animated gif: %s %dx%d centre %v, want the red first frame", out.ContentType, out.Width, out.Height, main.At(15, 10))
	}

	// Greyscale JPEG.
	g := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range g.Pix {
		g.Pix[i] = uint8(i)
	}
	out = imgProcess(t, imgJPEG(t, g), ImageOptions{})
	imgCheckOutput(t, out)
	if out.ContentType != "image/jpeg" || out.Width != 40 || out.Height != 30 {
		t.Errorf("grey jpeg: %s %dx%d", out.ContentType, out.Width, out.Height)
	}

	// 16-bit PNG with alpha, scaled.
	n64 := image.NewNRGBA64(image.Rect(0, 0, 90, 60))
	for y := 0; y < 60; y++ {
		for x := 0; x < 90; x++ {
			n64.SetNRGBA64(x, y, color.NRGBA64{0xffff, 0x8000, 0, uint16(x * 700)})
		}
	}
	out = imgProcess(t, imgPNG(t, n64), ImageOptions{FitSide: 45})
	main = imgCheckOutput(t, out)
	if out.ContentType != "image/png" || out.Width != 45 || out.Height != 30 {
		t.Errorf("16-bit png: %s %dx%d", out.ContentType, out.Width, out.Height)
	}
	if _, _, _, a := main.At(0, 15).RGBA(); a > 0x1000 {
		t.Errorf("16-bit png: left edge alpha %#x, want nearly transparent", a)
	}

	// Paletted PNG with a transparent entry; and one without.
	p := image.NewPaletted(image.Rect(0, 0, 20, 20), color.Palette{color.NRGBA{0, 0, 255, 255}, color.NRGBA{}})
	p.Pix[0] = 1
	out = imgProcess(t, imgPNG(t, p), ImageOptions{})
	if imgCheckOutput(t, out); out.ContentType != "image/png" {
		t.Errorf("paletted png with a transparent pixel: %s", out.ContentType)
	}
	p.Pix[0] = 0
	out = imgProcess(t, imgPNG(t, p), ImageOptions{})
	if imgCheckOutput(t, out); out.ContentType != "image/jpeg" {
		t.Errorf("paletted png without transparent pixels: %s", out.ContentType)
	}

	// Transparency outside the crop does not matter.
	m := imgBands(300, 100, true, 50, 250)
	for y := 0; y < 100; y++ {
		m.SetNRGBA(0, y, imgClear)
	}
	out = imgProcess(t, imgPNG(t, m), ImageOptions{Square: true})
	if imgCheckOutput(t, out); out.ContentType != "image/jpeg" {
		t.Errorf("transparency cropped away: %s", out.ContentType)
	}
}

func TestProcessImagePNGAlphaPreserved(t *testing.T) {
	t.Parallel()
	m := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			switch {
			case x < 32:
				m.SetNRGBA(x, y, imgBlue)
			case y < 32:
				m.SetNRGBA(x, y, color.NRGBA{0, 255, 0, 128})
			default:
				m.SetNRGBA(x, y, imgClear)
			}
		}
	}
	out := imgProcess(t, imgPNG(t, m), ImageOptions{})
	main := imgCheckOutput(t, out)
	if out.ContentType != "image/png" {
		t.Fatalf("content type %q, want image/png", out.ContentType)
	}
	if !imgNear(main.At(5, 5), imgBlue, 0) {
		t.Errorf("opaque pixel %v", main.At(5, 5))
	}
	if !imgNear(main.At(50, 10), color.NRGBA{0, 255, 0, 128}, 2) {
		t.Errorf("half-transparent pixel %v", main.At(50, 10))
	}
	if _, _, _, a := main.At(50, 50).RGBA(); a != 0 {
		t.Errorf("transparent pixel has alpha %d", a)
	}
}

func TestProcessImageScalesDown(t *testing.T) {
	t.Parallel()
	if o := (ImageOptions{}).withDefaults(); o.MaxPixels != 40_000_000 || o.MaxSide != 16384 || o.FitSide != 2048 || o.ThumbSide != 400 {
		t.Errorf("defaults %+v", o)
	}
	out := imgProcess(t, imgJPEG(t, imgQuadrants(1050, 350)), ImageOptions{FitSide: 512})
	main := imgCheckOutput(t, out)
	if out.Width != 512 || out.Height != 171 || out.SourceWidth != 1050 || out.SourceHeight != 350 {
		t.Errorf("main %dx%d source %dx%d; want 512x171 from 1050x350", out.Width, out.Height, out.SourceWidth, out.SourceHeight)
	}
	if out.ThumbWidth != 400 || out.ThumbHeight != 134 {
		t.Errorf("thumb %dx%d; want 400x134", out.ThumbWidth, out.ThumbHeight)
	}
	// The quadrants are where they were: scaling keeps geometry, and the
	// strip-wise scaling (6 row strips, 8 column strips here) leaves no
	// seams (a seam would show as a wrong row or column).
	for _, p := range []struct {
		x, y int
		c    color.NRGBA
	}{{10, 10, imgRed}, {502, 10, imgGreen}, {10, 161, imgBlue}, {502, 161, imgWhite}, {250, 50, imgRed}, {270, 120, imgWhite}, {127, 64, imgRed}, {384, 128, imgWhite}} {
		if !imgNear(main.At(p.x, p.y), p.c, 24) {
			t.Errorf("pixel %d,%d = %v, want %v", p.x, p.y, main.At(p.x, p.y), p.c)
		}
	}

	// Portrait, custom sizes.
	out = imgProcess(t, imgJPEG(t, imgGradient(500, 1000)), ImageOptions{FitSide: 300, ThumbSide: 50})
	imgCheckOutput(t, out)
	if out.Width != 150 || out.Height != 300 || out.ThumbWidth != 25 || out.ThumbHeight != 50 {
		t.Errorf("got main %dx%d thumb %dx%d; want 150x300 and 25x50", out.Width, out.Height, out.ThumbWidth, out.ThumbHeight)
	}
}

func TestImageResampleMatchesSinglePass(t *testing.T) {
	t.Parallel()
	// The two-pass strip-wise scaling must agree with one x/image/draw
	// Catmull-Rom Scale over the whole image, up to 8-bit rounding of the
	// intermediate image.
	src := imgGradient(517, 333)
	got, err := imageResample(context.Background(), src, image.Rect(7, 5, 517, 333), 201, 97)
	if err != nil {
		t.Fatal(err)
	}
	want := image.NewRGBA(image.Rect(0, 0, 201, 97))
	imageTestScaleOnce(want, src, image.Rect(7, 5, 517, 333))
	worst := 0
	for i := range got.Pix {
		worst = max(worst, int(got.Pix[i])-int(want.Pix[i]), int(want.Pix[i])-int(got.Pix[i]))
	}
	if worst > 2 {
		t.Errorf("two-pass scaling differs from single pass by up to %d levels", worst)
	}
}

func TestProcessImageCrops(t *testing.T) {
	t.Parallel()
	// Square: a 300x200 image of vertical bands red|green|blue with the green
	// band exactly the centre 200 columns.
	out := imgProcess(t, imgPNG(t, imgBands(300, 200, true, 50, 250)), ImageOptions{Square: true})
	main := imgCheckOutput(t, out)
	if out.Width != 200 || out.Height != 200 || out.SourceWidth != 300 || out.SourceHeight != 200 {
		t.Fatalf("square: main %dx%d source %dx%d", out.Width, out.Height, out.SourceWidth, out.SourceHeight)
	}
	for _, p := range []image.Point{{1, 1}, {198, 1}, {1, 198}, {198, 198}} {
		if !imgNear(main.At(p.X, p.Y), imgGreen, 24) {
			t.Errorf("square: pixel %v = %v, want green", p, main.At(p.X, p.Y))
		}
	}
	// Aspect 3: a 300x300 image of horizontal bands with green rows 100-199.
	out = imgProcess(t, imgPNG(t, imgBands(300, 300, false, 100, 200)), ImageOptions{Aspect: 3})
	main = imgCheckOutput(t, out)
	if out.Width != 300 || out.Height != 100 {
		t.Fatalf("aspect: main %dx%d, want 300x100", out.Width, out.Height)
	}
	for _, p := range []image.Point{{1, 1}, {298, 1}, {1, 98}, {298, 98}} {
		if !imgNear(main.At(p.X, p.Y), imgGreen, 24) {
			t.Errorf("aspect: pixel %v = %v, want green", p, main.At(p.X, p.Y))
		}
	}
	// Aspect on a too narrow image crops height; the square wins over Aspect.
	out = imgProcess(t, imgJPEG(t, imgGradient(90, 300)), ImageOptions{Aspect: 3, FitSide: 60})
	if out.Width != 60 || out.Height != 20 {
		t.Errorf("aspect on portrait: %dx%d, want 60x20", out.Width, out.Height)
	}
	out = imgProcess(t, imgJPEG(t, imgGradient(90, 300)), ImageOptions{Aspect: 3, Square: true})
	if out.Width != 90 || out.Height != 90 {
		t.Errorf("square and aspect: %dx%d, want 90x90", out.Width, out.Height)
	}
	// The crop applies to the displayed (oriented) image: stored 300x100
	// with orientation 6 is displayed 100x300 and cropped to 100x33.
	j := imgWithExif(imgJPEG(t, imgGradient(300, 100)), binary.BigEndian, 6)
	out = imgProcess(t, j, ImageOptions{Aspect: 3})
	if out.Width != 100 || out.Height != 33 || out.SourceWidth != 100 || out.SourceHeight != 300 {
		t.Errorf("aspect with orientation: main %dx%d source %dx%d; want 100x33 of 100x300",
			out.Width, out.Height, out.SourceWidth, out.SourceHeight)
	}
	// Odd ratios do not break anything.
	for _, a := range []float64{1e-300, 1e300, 0.001} {
		out = imgProcess(t, imgJPEG(t, imgGradient(40, 30)), ImageOptions{Aspect: a})
		imgCheckOutput(t, out)
	}
}

func TestProcessImageOrientation(t *testing.T) {
	t.Parallel()
	// Stored corners: red top-left, green top-right, blue bottom-left,
	// white bottom-right. Expected displayed corners per EXIF orientation,
	// in the order top-left, top-right, bottom-left, bottom-right.
	R, G, B, W := imgRed, imgGreen, imgBlue, imgWhite
	want := map[uint16][4]color.NRGBA{
		1: {R, G, B, W},
		2: {G, R, W, B}, // mirrored horizontally
		3: {W, B, G, R}, // rotated 180°
		4: {B, W, R, G}, // mirrored vertically
		5: {R, B, G, W}, // transposed
		6: {B, R, W, G}, // rotate 90° clockwise to display
		7: {W, G, B, R}, // transversed
		8: {G, W, R, B}, // rotate 90° counter-clockwise to display
	}
	src := imgJPEG(t, imgQuadrants(80, 40))
	for o, corners := range want {
		for _, bo := range []imgByteOrder{binary.LittleEndian, binary.BigEndian} {
			out := imgProcess(t, imgWithExif(src, bo, o), ImageOptions{})
			main := imgCheckOutput(t, out)
			w, h := 80, 40
			if o >= 5 {
				w, h = 40, 80
			}
			if out.Width != w || out.Height != h || out.SourceWidth != w || out.SourceHeight != h {
				t.Errorf("orientation %d (%v): main %dx%d source %dx%d, want %dx%d", o, bo, out.Width, out.Height, out.SourceWidth, out.SourceHeight, w, h)
				continue
			}
			pts := [4]image.Point{{3, 3}, {w - 4, 3}, {3, h - 4}, {w - 4, h - 4}}
			for k, p := range pts {
				if !imgNear(main.At(p.X, p.Y), corners[k], 40) {
					t.Errorf("orientation %d (%v): pixel %v = %v, want %v", o, bo, p, main.At(p.X, p.Y), corners[k])
				}
			}
		}
	}
}

func TestProcessImageStripsMetadata(t *testing.T) {
	t.Parallel()
	secrets := []string{"SECRET", "Exif", "GPS", "http://ns.adobe.com", "ICC_PROFILE", "tEXt", "eXIf", "iTXt"}
	xmp := append([]byte("http://ns.adobe.com/xap/1.0/\x00"), `<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description GPSLatitude="SECRETXMP-48.85"/></x:xmpmeta>`...)
	icc := append([]byte("ICC_PROFILE\x00\x01\x01"), "SECRETICC profile bytes"...)
	j := imgWithExif(imgJPEG(t, imgGradient(64, 48)), binary.LittleEndian, 1)
	j = imgWithSegments(j,
		imgJPEGSegment(0xE1, xmp),
		imgJPEGSegment(0xE2, icc),
		imgJPEGSegment(0xFE, []byte("SECRETCOMMENT by the camera owner")))
	j = append(j, "SECRETTRAILER after EOI"...)

	pngIn := imgInsertPNGChunks(imgPNG(t, imgGradient(64, 48)),
		imgPNGChunk("tEXt", []byte("Comment\x00SECRETPNGTEXT")),
		imgPNGChunk("eXIf", imgExifTIFF(binary.BigEndian, 1)),
		imgPNGChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00SECRETPNGXMP")))

	for name, in := range map[string][]byte{"jpeg": j, "png": pngIn} {
		// The crafted input really carries the metadata.
		for _, s := range []string{"SECRET", "GPS-DATUM", "SECRETCAMERA"} {
			if !bytes.Contains(in, []byte(s)) {
				t.Fatalf("%s: test input lacks %q", name, s)
			}
		}
		out := imgProcess(t, in, ImageOptions{})
		imgCheckOutput(t, out)
		for _, part := range [][]byte{out.Main, out.Thumb} {
			for _, s := range secrets {
				if bytes.Contains(part, []byte(s)) {
					t.Errorf("%s: output contains %q", name, s)
				}
			}
			if bytes.Contains(part, []byte{0xFF, 0xE1}) && out.ContentType == "image/jpeg" {
				// APP1 could only appear by chance inside entropy-coded data,
				// where 0xFF is always stuffed with 0x00.
				t.Errorf("%s: output contains an APP1 marker", name)
			}
		}
	}
	// The Exif segment was well-formed: the parser finds the orientation in
	// it (so the stripping above was tested against real EXIF).
	if o := jpegExifOrientation(imgWithExif(imgJPEG(t, imgGradient(8, 8)), binary.LittleEndian, 7)); o != 7 {
		t.Errorf("crafted Exif orientation read as %d", o)
	}
}

func TestProcessImageBombs(t *testing.T) {
	// Not parallel: it measures allocations.
	cases := map[string][]byte{
		"png 100000x100000":    imgPNGHeaderOnly(100000, 100000),
		"png 20000x10 (side)":  imgPNGHeaderOnly(20000, 10),
		"png 8000x6000":        imgPNGHeaderOnly(8000, 6000), // would be 192 MB decoded
		"gif 65535x65535":      imgGIFHeaderOnly(65535, 65535),
		"webp 16384x16384":     imgWebPVP8XHeaderOnly(16384, 16384),
		"webp 16777216x1 side": imgWebPVP8XHeaderOnly(1<<24, 1),
		"jpeg 65535x65535":     imgJPEGDeclaring(t, 65535, 65535),
		"jpeg 16385x16 (side)": imgJPEGDeclaring(t, 16385, 16),
		// image/png itself refuses sizes whose byte count overflows; that
		// is reported as ErrNotImage by the header check, also before any
		// allocation.
		"png 2^31-1 square": imgPNGHeaderOnly(1<<31-1, 1<<31-1),
	}
	for name, data := range cases {
		want := ErrImageTooLarge
		if name == "png 2^31-1 square" {
			want = ErrNotImage
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := ProcessImage(context.Background(), bytes.NewReader(data), 1<<20, ImageOptions{})
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", name, err, want)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
			t.Errorf("%s: allocated %d bytes", name, alloc)
		}
		if elapsed > time.Second {
			t.Errorf("%s: took %v", name, elapsed)
		}
	}
	// A custom pixel limit.
	_, err := ProcessImage(context.Background(), bytes.NewReader(imgPNG(t, imgGradient(20, 20))), 0, ImageOptions{MaxPixels: 399})
	if !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("400 pixels with MaxPixels 399: err = %v", err)
	}
	_, err = ProcessImage(context.Background(), bytes.NewReader(imgPNG(t, imgGradient(20, 20))), 0, ImageOptions{MaxPixels: 400, MaxSide: 20})
	if err != nil {
		t.Errorf("400 pixels at the limits: %v", err)
	}
}

func TestProcessImageMaxBytes(t *testing.T) {
	t.Parallel()
	data := imgPNG(t, imgGradient(50, 50))
	n := int64(len(data))
	if _, err := ProcessImage(context.Background(), bytes.NewReader(data), n, ImageOptions{}); err != nil {
		t.Errorf("exactly maxBytes: %v", err)
	}
	_, err := ProcessImage(context.Background(), bytes.NewReader(data), n-1, ImageOptions{})
	if !errors.Is(err, ErrImageFileTooLarge) {
		t.Errorf("one byte over: err = %v, want ErrImageFileTooLarge", err)
	}
	// An endless stream is not read beyond the limit.
	r := &imgCountingReader{r: io.MultiReader(bytes.NewReader(data), imgZeros{})}
	_, err = ProcessImage(context.Background(), r, 1<<20, ImageOptions{})
	if !errors.Is(err, ErrImageFileTooLarge) || r.n > 1<<20+1 {
		t.Errorf("endless input: err = %v after reading %d bytes", err, r.n)
	}
}

type imgZeros struct{}

func (imgZeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type imgCountingReader struct {
	r io.Reader
	n int64
}

func (c *imgCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestProcessImageNotImages(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"empty":                "",
		"text named cat.jpg":   "this is just text, although the upload was called cat.jpg\n",
		"html":                 "<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
		"svg":                  `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>`,
		"svg without prolog":   `<svg xmlns="http://www.w3.org/2000/svg"></svg>`,
		"pdf":                  "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
		"bmp":                  "BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x18\x00",
		"tiff":                 "II*\x00\x08\x00\x00\x00\x00\x00",
		"wav":                  "RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
		"jpeg magic then html": "\xFF\xD8\xFF<html><script>alert(1)</script></html>",
		"png magic only":       "\x89PNG\r\n\x1a\n",
		"gif magic only":       "GIF89a",
		"webp magic then junk": "RIFF\x10\x00\x00\x00WEBPVP8 \x00\x00\x00\x00junkjunk",
	}
	for name, data := range cases {
		_, err := ProcessImage(context.Background(), strings.NewReader(data), 1<<20, ImageOptions{})
		if !errors.Is(err, ErrNotImage) {
			t.Errorf("%s: err = %v, want ErrNotImage", name, err)
		}
	}
}

func TestProcessImageTruncated(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{
		"jpeg": imgJPEG(t, imgGradient(40, 30)),
		"png":  imgPNG(t, imgGradient(40, 30)),
		"gif":  imgGIF(t, imgQuadrants(40, 30), false),
		"webp": imgTestdata(t, "image-lossy.webp"),
	}
	for name, data := range inputs {
		// Half the file is always an error (wrapping ErrNotImage).
		_, err := ProcessImage(context.Background(), bytes.NewReader(data[:len(data)/2]), 1<<20, ImageOptions{})
		if !errors.Is(err, ErrNotImage) {
			t.Errorf("%s cut in half: err = %v, want ErrNotImage", name, err)
		}
		// Every cut point: no panic; an error or a valid result.
		for n := 0; n < len(data); n += 1 + len(data)/200 {
			out, err := ProcessImage(context.Background(), bytes.NewReader(data[:n]), 1<<20, ImageOptions{})
			if err == nil {
				imgCheckOutput(t, out)
			}
		}
		// Flipped bytes: same.
		for n := 0; n < len(data); n += 1 + len(data)/100 {
			bad := bytes.Clone(data)
			bad[n] ^= 0x5A
			out, err := ProcessImage(context.Background(), bytes.NewReader(bad), 1<<20, ImageOptions{})
			if err == nil {
				imgCheckOutput(t, out)
			} else if !errors.Is(err, ErrNotImage) && !errors.Is(err, ErrImageTooLarge) {
				t.Errorf("%s with byte %d flipped: unclassified error %v", name, n, err)
			}
		}
	}
}

func TestProcessImageContext(t *testing.T) {
	t.Parallel()
	data := imgJPEG(t, imgGradient(64, 64))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ProcessImage(ctx, bytes.NewReader(data), 0, ImageOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: err = %v", err)
	}
	// Cancelled while the upload is being read.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r := &imgCancelReader{r: bytes.NewReader(data), cancel: cancel}
	if _, err := ProcessImage(ctx, r, 0, ImageOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled while reading: err = %v", err)
	}
	// Deadline passed.
	ctx, cancel2 := context.WithTimeout(context.Background(), -time.Second)
	defer cancel2()
	if _, err := ProcessImage(ctx, bytes.NewReader(data), 0, ImageOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err = %v", err)
	}
}

// imgCancelReader cancels its context after the first read.
type imgCancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *imgCancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 16)])
	c.cancel()
	return n, err
}

func TestImageFitAndCropSize(t *testing.T) {
	t.Parallel()
	fit := []struct{ w, h, side, ww, wh int }{
		{100, 50, 400, 100, 50},
		{400, 400, 400, 400, 400},
		{4000, 3000, 2048, 2048, 1536},
		{3000, 4000, 2048, 1536, 2048},
		{10000, 1, 400, 400, 1},
		{1, 10000, 400, 1, 400},
	}
	for _, c := range fit {
		if w, h := imageFitSize(c.w, c.h, c.side); w != c.ww || h != c.wh {
			t.Errorf("fit %dx%d in %d = %dx%d, want %dx%d", c.w, c.h, c.side, w, h, c.ww, c.wh)
		}
	}
	crop := []struct {
		w, h   int
		opt    ImageOptions
		ww, wh int
	}{
		{300, 200, ImageOptions{}, 300, 200},
		{300, 200, ImageOptions{Square: true}, 200, 200},
		{200, 300, ImageOptions{Square: true}, 200, 200},
		{900, 900, ImageOptions{Aspect: 3}, 900, 300},
		{1200, 300, ImageOptions{Aspect: 3}, 900, 300},
		{100, 1, ImageOptions{Aspect: 3}, 3, 1},
		{1, 100, ImageOptions{Aspect: 3}, 1, 1},
		{50, 40, ImageOptions{Aspect: -1}, 50, 40},
	}
	for _, c := range crop {
		if w, h := imageCropSize(c.w, c.h, c.opt); w != c.ww || h != c.wh {
			t.Errorf("crop %dx%d with %+v = %dx%d, want %dx%d", c.w, c.h, c.opt, w, h, c.ww, c.wh)
		}
	}
}
