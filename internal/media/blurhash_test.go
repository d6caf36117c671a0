package media

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"
)

// blurhashReference is a deliberately naive, independent transcription of
// the published reference encoder (woltapp/blurhash, C/TypeScript): one full
// pass over the pixels per component, pixel values un-premultiplied through
// image/color, the AC maximum taken over absolute values as in the C, Swift
// and Python encoders.
func blurhashReference(img image.Image, cx, cy int) string {
	const chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
	encode83 := func(value, length int) string {
		s := ""
		for i := 1; i <= length; i++ {
			digit := (value / int(math.Pow(83, float64(length-i)))) % 83
			s += string(chars[digit])
		}
		return s
	}
	toLinear := func(v uint8) float64 {
		f := float64(v) / 255
		if f <= 0.04045 {
			return f / 12.92
		}
		return math.Pow((f+0.055)/1.055, 2.4)
	}
	toSRGB := func(v float64) int {
		v = math.Max(0, math.Min(1, v))
		if v <= 0.0031308 {
			return int(math.Trunc(v*12.92*255 + 0.5))
		}
		return int(math.Trunc((1.055*math.Pow(v, 1/2.4)-0.055)*255 + 0.5))
	}
	signPow := func(v, e float64) float64 {
		if v < 0 {
			return -math.Pow(-v, e)
		}
		return math.Pow(v, e)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	var factors [][3]float64
	for y := 0; y < cy; y++ {
		for x := 0; x < cx; x++ {
			norm := 2.0
			if x == 0 && y == 0 {
				norm = 1
			}
			var r, g, bl float64
			for i := 0; i < w; i++ {
				for j := 0; j < h; j++ {
					basis := norm * math.Cos(math.Pi*float64(x)*float64(i)/float64(w)) * math.Cos(math.Pi*float64(y)*float64(j)/float64(h))
					c := color.NRGBAModel.Convert(img.At(b.Min.X+i, b.Min.Y+j)).(color.NRGBA)
					r += basis * toLinear(c.R)
					g += basis * toLinear(c.G)
					bl += basis * toLinear(c.B)
				}
			}
			scale := 1 / float64(w*h)
			factors = append(factors, [3]float64{r * scale, g * scale, bl * scale})
		}
	}
	hash := encode83(cx-1+(cy-1)*9, 1)
	maximum := 1.0
	if len(factors) > 1 {
		actual := 0.0
		for _, f := range factors[1:] {
			for _, v := range f {
				actual = math.Max(actual, math.Abs(v))
			}
		}
		q := int(math.Max(0, math.Min(82, math.Floor(actual*166-0.5))))
		maximum = float64(q+1) / 166
		hash += encode83(q, 1)
	} else {
		hash += encode83(0, 1)
	}
	dc := factors[0]
	hash += encode83((toSRGB(dc[0])<<16)+(toSRGB(dc[1])<<8)+toSRGB(dc[2]), 4)
	for _, f := range factors[1:] {
		q := func(v float64) int {
			return int(math.Max(0, math.Min(18, math.Floor(signPow(v/maximum, 0.5)*9+9.5))))
		}
		hash += encode83(q(f[0])*19*19+q(f[1])*19+q(f[2]), 2)
	}
	return hash
}

func TestBlurhashSolidColourKnownValue(t *testing.T) {
	t.Parallel()
	// Worked by hand for white 32x24. The basis samples cos(pi*x*i/w) at
	// i = 0..w-1, so sum_i cos(pi*x*i/w) is w for x = 0, 1 for odd x and 0
	// for even x > 0: a solid image has non-zero AC terms. With linear value
	// 1, factor(x,y) = norm * Sx * Sy / (w*h):
	//   DC = 1 -> sRGB 0xFFFFFF = 16777215 = 29*83^3 + 28*83^2 + 30*83 + 10 -> "TSUA"
	//   (1,0), (3,0): 2/32 = 0.0625; (0,1): 2/24 = 0.08333; (1,1), (3,1): 2/768
	//   max 0.08333 -> floor(0.08333*166-0.5) = 13 -> 'D'; maximum = 14/166
	//   0.0625/(14/166)   -> sqrt 0.8609*9+9.5 -> 17 -> 17*361+17*19+17 = 6477 = 78*83+3 -> "_3"
	//   0.08333/(14/166)  -> 18 -> 6858 = 82*83+52 -> "~q"
	//   0.002604/(14/166) -> 11 -> 4191 = 50*83+41 -> "of"
	//   zero              -> 9  -> 3429 = 41*83+26 -> "fQ"
	// Size flag (4-1)+(3-1)*9 = 21 -> 'L'. AC order: y outer, x inner.
	m := image.NewNRGBA(image.Rect(0, 0, 32, 24))
	for i := range m.Pix {
		m.Pix[i] = 0xff
	}
	got, err := EncodeBlurhash(m, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := "L" + "D" + "TSUA" + "_3" + "fQ" + "_3" + "~q" + "of" + "fQ" + "of" + "fQfQfQfQ"; got != want {
		t.Errorf("white: %q, want %q", got, want)
	}
	// Black: DC 0 -> "0000". 1x1 components: flag 0, no AC.
	got, err = EncodeBlurhash(image.NewNRGBA(image.Rect(0, 0, 5, 5)).SubImage(image.Rect(1, 1, 4, 4)), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got != "000000" {
		t.Errorf("black 1x1: %q, want 000000", got)
	}
}

func TestBlurhashMatchesReference(t *testing.T) {
	t.Parallel()
	inputs := map[string]image.Image{
		"gradient":  imgGradient(64, 48),
		"quadrants": imgQuadrants(50, 70),
		"bands":     imgBands(40, 40, true, 10, 25),
		"offset":    imgGradient(80, 60).SubImage(image.Rect(10, 5, 70, 50)),
	}
	rgba := image.NewRGBA(image.Rect(0, 0, 30, 20))
	for y := 0; y < 20; y++ {
		for x := 0; x < 30; x++ {
			rgba.Set(x, y, color.NRGBA{uint8(x * 8), 100, uint8(y * 12), uint8(55 + x*6)})
		}
	}
	inputs["premultiplied with alpha"] = rgba
	ycc := image.NewYCbCr(image.Rect(0, 0, 24, 16), image.YCbCrSubsampleRatio420)
	for i := range ycc.Y {
		ycc.Y[i] = uint8(i * 3)
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = uint8(40+i), uint8(200-i)
	}
	inputs["ycbcr"] = ycc
	for name, m := range inputs {
		for _, comp := range [][2]int{{4, 3}, {1, 1}, {9, 9}, {3, 5}} {
			got, err := EncodeBlurhash(m, comp[0], comp[1])
			if err != nil {
				t.Fatal(err)
			}
			want := blurhashReference(m, comp[0], comp[1])
			if got != want {
				t.Errorf("%s %dx%d: %q, reference %q", name, comp[0], comp[1], got, want)
			}
			if n := 6 + 2*(comp[0]*comp[1]-1); len(got) != n {
				t.Errorf("%s %dx%d: length %d, want %d", name, comp[0], comp[1], len(got), n)
			}
			if flag := strings.IndexByte(blurhashDigits, got[0]); flag != comp[0]-1+(comp[1]-1)*9 {
				t.Errorf("%s %dx%d: size flag %d", name, comp[0], comp[1], flag)
			}
		}
	}
}

func TestBlurhashErrors(t *testing.T) {
	t.Parallel()
	m := imgGradient(8, 8)
	for _, c := range [][2]int{{0, 3}, {4, 0}, {10, 3}, {4, 10}, {-1, -1}} {
		if _, err := EncodeBlurhash(m, c[0], c[1]); err == nil {
			t.Errorf("components %v: no error", c)
		}
	}
	if _, err := EncodeBlurhash(image.NewNRGBA(image.Rect(0, 0, 0, 5)), 4, 3); err == nil {
		t.Error("empty image: no error")
	}
}
