package media

import (
	"encoding/binary"
	"testing"
)

func TestJPEGExifOrientation(t *testing.T) {
	t.Parallel()
	j := imgJPEG(t, imgGradient(8, 8))
	app1 := func(payload []byte) []byte { return imgJPEGSegment(0xE1, payload) }
	exif := func(tiff []byte) []byte { return app1(append([]byte("Exif\x00\x00"), tiff...)) }
	le, be := binary.LittleEndian, binary.BigEndian

	// A minimal IFD0 holding one entry.
	oneEntry := func(bo imgByteOrder, e imgTIFFEntry) []byte {
		t := []byte("MM\x00*")
		if bo == imgByteOrder(le) {
			t = []byte("II*\x00")
		}
		t = bo.AppendUint32(t, 8)
		return append(t, imgIFD(bo, 8, []imgTIFFEntry{e})...)
	}

	cases := []struct {
		name string
		data []byte
		want int
	}{
		{"no exif", j, 1},
		{"little endian 6", imgWithExif(j, le, 6), 6},
		{"big endian 8", imgWithExif(j, be, 8), 8},
		{"every value", imgWithExif(j, be, 5), 5},
		{"no orientation tag", imgWithExif(j, le, 0), 1},
		{"LONG type", imgWithSegments(j, exif(oneEntry(le, imgLong(le, 0x0112, 3)))), 3},
		{"out of range 9", imgWithExif(j, le, 9), 1},
		{"zero", imgWithExif(j, be, 0), 1},
		{"wrong type", imgWithSegments(j, exif(oneEntry(be, imgASCII(0x0112, "6")))), 1},
		{"zero count", imgWithSegments(j, exif(oneEntry(be, imgTIFFEntry{0x0112, 3, 0, []byte{0, 6}}))), 1},
		{"after another APP segment", imgWithSegments(j, imgJPEGSegment(0xE0, []byte("JFIF\x00\x01\x01")), exif(oneEntry(be, imgShort(be, 0x0112, 7)))), 7},
		{"fill bytes before marker", imgWithSegments(j, append([]byte{0xFF, 0xFF}, exif(oneEntry(be, imgShort(be, 0x0112, 2)))...)), 2},
		{"first exif wins", imgWithSegments(j, exif(oneEntry(le, imgShort(le, 0x0112, 4))), exif(oneEntry(le, imgShort(le, 0x0112, 6)))), 4},
		{"xmp app1 is not exif", imgWithSegments(j, app1([]byte("http://ns.adobe.com/xap/1.0/\x00<x/>")), exif(oneEntry(le, imgShort(le, 0x0112, 6)))), 6},
		{"bad byte order mark", imgWithSegments(j, exif(append([]byte("IM*\x00"), oneEntry(le, imgShort(le, 0x0112, 6))[4:]...))), 1},
		{"IFD offset out of range", imgWithSegments(j, exif([]byte("II*\x00\xff\xff\xff\x7f"))), 1},
		{"IFD offset into header", imgWithSegments(j, exif([]byte("II*\x00\x02\x00\x00\x00\x01\x00"))), 1},
		{"IFD count beyond data", imgWithSegments(j, exif([]byte("MM\x00*\x00\x00\x00\x08\xff\xff\x01\x12\x00\x03"))), 1},
		{"short TIFF", imgWithSegments(j, exif([]byte("MM\x00*"))), 1},
		{"exif header only", imgWithSegments(j, app1([]byte("Exif\x00"))), 1},
		{"segment length past end", []byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xF0, 'E', 'x', 'i', 'f', 0, 0}, 1},
		{"segment length too small", []byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01, 0xFF, 0xD9}, 1},
		{"not a marker", []byte{0xFF, 0xD8, 0x12, 0x34}, 1},
		{"SOI only", []byte{0xFF, 0xD8}, 1},
		{"dangling FF", []byte{0xFF, 0xD8, 0xFF}, 1},
		{"dangling length", []byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00}, 1},
		{"empty", nil, 1},
		{"not a JPEG", []byte("Exif\x00\x00II*\x00"), 1},
	}
	// Exif after the start of scan is entropy-coded data's business, not ours.
	sos := []byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02}
	cases = append(cases, struct {
		name string
		data []byte
		want int
	}{"exif after SOS", append(sos, exif(oneEntry(le, imgShort(le, 0x0112, 6)))...), 1})

	for _, c := range cases {
		if got := jpegExifOrientation(c.data); got != c.want {
			t.Errorf("%s: orientation %d, want %d", c.name, got, c.want)
		}
	}

	// Every prefix of a valid file: no panic, and 1 or the right value.
	full := imgWithExif(j, be, 6)
	for n := range full {
		if got := jpegExifOrientation(full[:n]); got != 1 && got != 6 {
			t.Fatalf("prefix %d: orientation %d", n, got)
		}
	}
}

func FuzzJPEGExifOrientation(f *testing.F) {
	j := imgJPEG(f, imgGradient(8, 8))
	f.Add(imgWithExif(j, binary.LittleEndian, 6))
	f.Add(imgWithExif(j, binary.BigEndian, 8))
	f.Add(j)
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := jpegExifOrientation(b); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}
