package media

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/draw"
)

// Test helpers of the image pipeline. Names start with img to keep clear of
// the other files of package media.

var (
	imgRed   = color.NRGBA{255, 0, 0, 255}
	imgGreen = color.NRGBA{0, 255, 0, 255}
	imgBlue  = color.NRGBA{0, 0, 255, 255}
	imgWhite = color.NRGBA{255, 255, 255, 255}
	imgClear = color.NRGBA{0, 0, 0, 0}
)

// imgQuadrants is a w x h image with red, green, blue and white quadrants
// (top-left, top-right, bottom-left, bottom-right).
func imgQuadrants(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := imgRed
			switch {
			case x >= w/2 && y < h/2:
				c = imgGreen
			case x < w/2 && y >= h/2:
				c = imgBlue
			case x >= w/2 && y >= h/2:
				c = imgWhite
			}
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

// imgBands is a w x h image in three bands of colours: vertical (columns)
// when vertical, else horizontal (rows), with the given band boundaries.
func imgBands(w, h int, vertical bool, b1, b2 int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := y
			if vertical {
				v = x
			}
			c := imgGreen
			if v < b1 {
				c = imgRed
			} else if v >= b2 {
				c = imgBlue
			}
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

// imgGradient is a smooth, non-trivial opaque image.
func imgGradient(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / max(1, w-1)), uint8(y * 255 / max(1, h-1)), uint8((x + y) * 7), 255})
		}
	}
	return m
}

func imgJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func imgPNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// imgGIF encodes m with a small palette; transparent adds a transparent entry.
func imgGIF(t testing.TB, m image.Image, transparent bool) []byte {
	t.Helper()
	pal := color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}, color.RGBA{0, 0, 255, 255}, color.RGBA{255, 255, 255, 255}}
	if transparent {
		pal = append(pal, color.RGBA{})
	}
	p := image.NewPaletted(m.Bounds(), pal)
	for y := m.Bounds().Min.Y; y < m.Bounds().Max.Y; y++ {
		for x := m.Bounds().Min.X; x < m.Bounds().Max.X; x++ {
			p.Set(x, y, m.At(x, y))
		}
	}
	var b bytes.Buffer
	if err := gif.Encode(&b, p, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func imgTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imgDecodeOutput decodes an output of ProcessImage with the decoder its
// content type names, failing on anything else.
func imgDecodeOutput(t testing.TB, contentType string, b []byte) image.Image {
	t.Helper()
	var (
		m   image.Image
		err error
	)
	switch contentType {
	case "image/jpeg":
		if !bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) {
			t.Fatalf("output is not a JPEG: % x", b[:min(8, len(b))])
		}
		m, err = jpeg.Decode(bytes.NewReader(b))
	case "image/png":
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("output is not a PNG: % x", b[:min(8, len(b))])
		}
		m, err = png.Decode(bytes.NewReader(b))
	default:
		t.Fatalf("unexpected content type %q", contentType)
	}
	if err != nil {
		t.Fatalf("output does not decode: %v", err)
	}
	return m
}

// imgNear reports whether c is within tol of want on every channel
// (non-premultiplied).
func imgNear(c color.Color, want color.NRGBA, tol int) bool {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	d := func(a, b uint8) bool { return max(int(a)-int(b), int(b)-int(a)) <= tol }
	return d(n.R, want.R) && d(n.G, want.G) && d(n.B, want.B) && d(n.A, want.A)
}

// --- crafting files ---

// imgPNGChunk is a PNG chunk with a valid CRC.
func imgPNGChunk(typ string, data []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

// imgPNGHeaderOnly is a PNG that declares w x h RGBA pixels and has an IHDR
// with a valid CRC, a few bytes of IDAT and an IEND: a decompression bomb
// stand-in.
func imgPNGHeaderOnly(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA, deflate, adaptive filter, no interlace
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, imgPNGChunk("IHDR", ihdr)...)
	out = append(out, imgPNGChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(out, imgPNGChunk("IEND", nil)...)
}

// imgInsertPNGChunks inserts chunks right after IHDR.
func imgInsertPNGChunks(p []byte, chunks ...[]byte) []byte {
	const afterIHDR = 8 + 8 + 13 + 4
	out := append([]byte(nil), p[:afterIHDR]...)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, p[afterIHDR:]...)
}

// imgGIFHeaderOnly is a GIF89a declaring a w x h logical screen with a global
// colour table and one w x h frame whose data is missing.
func imgGIFHeaderOnly(w, h uint16) []byte {
	out := []byte("GIF89a")
	out = binary.LittleEndian.AppendUint16(out, w)
	out = binary.LittleEndian.AppendUint16(out, h)
	out = append(out, 0x80, 0, 0)             // global colour table of 2 entries
	out = append(out, 0, 0, 0, 255, 255, 255) // the table
	out = append(out, 0x2C, 0, 0, 0, 0)       // image descriptor at 0,0
	out = binary.LittleEndian.AppendUint16(out, w)
	out = binary.LittleEndian.AppendUint16(out, h)
	out = append(out, 0, 2) // no local table; LZW minimum code size
	return append(out, 0x3B)
}

// imgWebPVP8XHeaderOnly is a RIFF WEBP with a VP8X chunk declaring a w x h
// canvas (each at most 1<<24) and nothing else.
func imgWebPVP8XHeaderOnly(w, h uint32) []byte {
	vp8x := []byte{0x10, 0, 0, 0} // alpha flag
	vp8x = append(vp8x, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	vp8x = append(vp8x, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	body := []byte("WEBPVP8X")
	body = binary.LittleEndian.AppendUint32(body, uint32(len(vp8x)))
	body = append(body, vp8x...)
	out := []byte("RIFF")
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

// imgJPEGDeclaring is a small valid JPEG whose SOF0 is patched to declare
// w x h: DecodeConfig accepts it, the scan data is far too short.
func imgJPEGDeclaring(t testing.TB, w, h uint16) []byte {
	t.Helper()
	j := imgJPEG(t, imgGradient(16, 16))
	i := bytes.Index(j, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0 in the encoder's output")
	}
	binary.BigEndian.PutUint16(j[i+5:], h)
	binary.BigEndian.PutUint16(j[i+7:], w)
	return j
}

// imgByteOrder is a TIFF byte order that can also append.
type imgByteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// imgTIFFEntry is one IFD entry; data is already in the file's byte order.
type imgTIFFEntry struct {
	tag, typ uint16
	count    uint32
	data     []byte
}

func imgASCII(tag uint16, s string) imgTIFFEntry {
	return imgTIFFEntry{tag, 2, uint32(len(s) + 1), append([]byte(s), 0)}
}

func imgShort(bo imgByteOrder, tag, v uint16) imgTIFFEntry {
	return imgTIFFEntry{tag, 3, 1, bo.AppendUint16(nil, v)}
}

func imgLong(bo imgByteOrder, tag uint16, v uint32) imgTIFFEntry {
	return imgTIFFEntry{tag, 4, 1, bo.AppendUint32(nil, v)}
}

func imgRationals(bo imgByteOrder, tag uint16, v ...uint32) imgTIFFEntry {
	var d []byte
	for _, x := range v {
		d = bo.AppendUint32(d, x)
	}
	return imgTIFFEntry{tag, 5, uint32(len(v) / 2), d}
}

// imgIFD lays out an IFD that starts at offset start of the TIFF structure,
// with its out-of-line values right after it.
func imgIFD(bo imgByteOrder, start int, entries []imgTIFFEntry) []byte {
	head := bo.AppendUint16(nil, uint16(len(entries)))
	var extra []byte
	dataAt := start + 2 + 12*len(entries) + 4
	for _, e := range entries {
		head = bo.AppendUint16(head, e.tag)
		head = bo.AppendUint16(head, e.typ)
		head = bo.AppendUint32(head, e.count)
		if len(e.data) <= 4 {
			var v [4]byte
			copy(v[:], e.data)
			head = append(head, v[:]...)
			continue
		}
		head = bo.AppendUint32(head, uint32(dataAt+len(extra)))
		extra = append(extra, e.data...)
		if len(extra)%2 == 1 {
			extra = append(extra, 0)
		}
	}
	head = bo.AppendUint32(head, 0) // no next IFD
	return append(head, extra...)
}

// imgExifTIFF is a TIFF structure with an IFD0 (camera make, model,
// software, orientation when o > 0) and a GPS IFD (position and a
// recognisable datum string).
func imgExifTIFF(bo imgByteOrder, o uint16) []byte {
	var out []byte
	if bo == imgByteOrder(binary.LittleEndian) {
		out = []byte("II*\x00")
	} else {
		out = []byte("MM\x00*")
	}
	out = bo.AppendUint32(out, 8)
	ifd0 := []imgTIFFEntry{
		imgASCII(0x010F, "SECRETCAMERA-Make"),
		imgASCII(0x0110, "SECRETCAMERA-Model X100"),
	}
	if o > 0 {
		ifd0 = append(ifd0, imgShort(bo, 0x0112, o))
	}
	ifd0 = append(ifd0, imgASCII(0x0131, "SECRETSOFTWARE 1.0"), imgLong(bo, 0x8825, 0))
	// The GPS IFD follows IFD0; compute where.
	size0 := len(imgIFD(bo, 8, ifd0))
	ifd0[len(ifd0)-1] = imgLong(bo, 0x8825, uint32(8+size0))
	gps := []imgTIFFEntry{
		{0x0000, 1, 4, []byte{2, 3, 0, 0}}, // GPSVersionID
		imgASCII(0x0001, "N"),
		imgRationals(bo, 0x0002, 48, 1, 51, 1, 2984, 100),
		imgASCII(0x0003, "E"),
		imgRationals(bo, 0x0004, 2, 1, 17, 1, 4010, 100),
		imgASCII(0x0012, "SECRETGPS-DATUM-48.8584N-2.2945E"),
	}
	out = append(out, imgIFD(bo, 8, ifd0)...)
	return append(out, imgIFD(bo, 8+size0, gps)...)
}

// imgJPEGSegment is a JPEG marker segment.
func imgJPEGSegment(marker byte, payload []byte) []byte {
	out := []byte{0xFF, marker}
	out = binary.BigEndian.AppendUint16(out, uint16(len(payload)+2))
	return append(out, payload...)
}

// imgWithSegments inserts marker segments right after the SOI of a JPEG.
func imgWithSegments(j []byte, segs ...[]byte) []byte {
	out := append([]byte(nil), j[:2]...)
	for _, s := range segs {
		out = append(out, s...)
	}
	return append(out, j[2:]...)
}

// imgWithExif adds an APP1 Exif segment (with orientation o, camera tags
// and GPS) to a JPEG.
func imgWithExif(j []byte, bo imgByteOrder, o uint16) []byte {
	return imgWithSegments(j, imgJPEGSegment(0xE1, append([]byte("Exif\x00\x00"), imgExifTIFF(bo, o)...)))
}

// imageTestScaleOnce scales sr of src into all of dst with a single
// x/image/draw Catmull-Rom Scale call (the reference for imageResample).
func imageTestScaleOnce(dst *image.RGBA, src image.Image, sr image.Rectangle) {
	draw.CatmullRom.Scale(dst, dst.Rect, src, sr, draw.Src, nil)
}
