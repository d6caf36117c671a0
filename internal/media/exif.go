package media

import "encoding/binary"

// jpegExifOrientation returns the EXIF orientation (1-8) of a JPEG file, or 1
// when there is none or it cannot be read. It walks the marker segments up to
// the first scan, takes the first APP1 "Exif" segment and reads tag 0x0112 of
// its TIFF IFD0. Every offset is bounds-checked; garbage yields 1, never a
// panic.
func jpegExifOrientation(b []byte) int {
	if len(b) < 2 || b[0] != 0xFF || b[1] != 0xD8 {
		return 1
	}
	i := 2
	for i+2 <= len(b) {
		if b[i] != 0xFF {
			return 1 // not at a marker: corrupt
		}
		marker := b[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		i += 2
		switch {
		case marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7):
			continue // standalone markers carry no length
		case marker == 0xD9 || marker == 0xDA:
			return 1 // end of image or start of scan: no Exif before the data
		}
		if i+2 > len(b) {
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[i:])) // includes the two length bytes
		if n < 2 || n > len(b)-i {
			return 1
		}
		seg := b[i+2 : i+n]
		if marker == 0xE1 && len(seg) >= 6 && string(seg[:5]) == "Exif\x00" {
			if o, ok := tiffOrientation(seg[6:]); ok {
				return o
			}
			return 1
		}
		i += n
	}
	return 1
}

// tiffOrientation reads the Orientation tag (0x0112) of IFD0 of the TIFF
// structure t (either byte order).
func tiffOrientation(t []byte) (int, bool) {
	if len(t) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	off := uint64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > uint64(len(t)) {
		return 0, false
	}
	count := int(bo.Uint16(t[off:]))
	entries := t[off+2:]
	for k := 0; k < count; k++ {
		if 12*(k+1) > len(entries) {
			return 0, false
		}
		e := entries[12*k : 12*(k+1)]
		if bo.Uint16(e) != 0x0112 {
			continue
		}
		if bo.Uint32(e[4:]) < 1 { // value count
			return 0, false
		}
		var v uint32
		switch bo.Uint16(e[2:]) { // value type
		case 3: // SHORT, as the standard says: left-justified in the value field
			v = uint32(bo.Uint16(e[8:]))
		case 4: // LONG, seen from sloppy writers
			v = bo.Uint32(e[8:])
		default:
			return 0, false
		}
		if v < 1 || v > 8 {
			return 0, false
		}
		return int(v), true
	}
	return 0, false
}
