package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"testing"
)

// FuzzProcessImage: hostile input never panics, every failure is one of the
// documented errors, and every success is a decodable image of the reported
// sizes within the limits.
func FuzzProcessImage(f *testing.F) {
	small := imgQuadrants(12, 8)
	alpha := image.NewNRGBA(image.Rect(0, 0, 9, 7))
	for i := range alpha.Pix {
		alpha.Pix[i] = uint8(i * 37)
	}
	f.Add(imgJPEG(f, small))
	f.Add(imgWithExif(imgJPEG(f, small), binary.LittleEndian, 6))
	f.Add(imgWithExif(imgJPEG(f, imgGradient(5, 9)), binary.BigEndian, 3))
	f.Add(imgPNG(f, small))
	f.Add(imgPNG(f, alpha))
	f.Add(imgPNG(f, image.NewGray16(image.Rect(0, 0, 4, 3))))
	pal := image.NewPaletted(image.Rect(0, 0, 6, 4), color.Palette{color.Black, color.Transparent})
	f.Add(imgPNG(f, pal))
	f.Add(imgGIF(f, small, false))
	f.Add(imgGIF(f, small, true))
	f.Add(imgTestdata(f, "image-lossy.webp"))
	f.Add(imgTestdata(f, "image-lossless-alpha.webp"))
	f.Add(imgPNGHeaderOnly(100000, 100000))
	f.Add(imgGIFHeaderOnly(300, 200))
	f.Add(imgWebPVP8XHeaderOnly(30, 20))
	f.Add([]byte{})

	opt := ImageOptions{MaxPixels: 1 << 20, MaxSide: 4096, FitSide: 64, ThumbSide: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ProcessImage(context.Background(), bytes.NewReader(data), 1<<20, opt)
		if err != nil {
			if !errors.Is(err, ErrNotImage) && !errors.Is(err, ErrImageTooLarge) && !errors.Is(err, ErrImageFileTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		main := imgDecodeOutput(t, out.ContentType, out.Main)
		thumb := imgDecodeOutput(t, out.ContentType, out.Thumb)
		if b := main.Bounds(); b.Dx() != out.Width || b.Dy() != out.Height || b.Dx() > 64 || b.Dy() > 64 || b.Empty() {
			t.Fatalf("main %v, reported %dx%d", b, out.Width, out.Height)
		}
		if b := thumb.Bounds(); b.Dx() != out.ThumbWidth || b.Dy() != out.ThumbHeight || b.Dx() > 16 || b.Dy() > 16 || b.Empty() {
			t.Fatalf("thumb %v, reported %dx%d", b, out.ThumbWidth, out.ThumbHeight)
		}
		if int64(out.SourceWidth)*int64(out.SourceHeight) > opt.MaxPixels {
			t.Fatalf("source %dx%d over the limit", out.SourceWidth, out.SourceHeight)
		}
		if len(out.Blurhash) != 28 {
			t.Fatalf("blurhash %q", out.Blurhash)
		}
	})
}
