package media

import (
	"errors"
	"image"
	"image/color"
	"math"
)

const blurhashDigits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"

// EncodeBlurhash computes the blurhash (https://blurha.sh) of img with
// xComp x yComp components (1-9 each), following the reference algorithm:
// sRGB to linear, a DCT-like cosine basis, the DC as 24-bit sRGB, the AC
// quantised against the largest AC magnitude, base83. The result has
// 6 + 2*(xComp*yComp-1) characters. Colours are taken un-premultiplied; alpha
// is otherwise ignored, as in the reference encoders. The cost is
// O(pixels x xComp), so pass a thumbnail.
func EncodeBlurhash(img image.Image, xComp, yComp int) (string, error) {
	if xComp < 1 || xComp > 9 || yComp < 1 || yComp > 9 {
		return "", errors.New("media: blurhash components must be 1 to 9")
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return "", errors.New("media: blurhash of an empty image")
	}
	var lin [256]float64
	for i := range lin {
		lin[i] = blurhashToLinear(i)
	}
	// cosX[x*w+i] = cos(pi*x*i/w), cosY[y*h+j] = cos(pi*y*j/h)
	cosX := make([]float64, xComp*w)
	for x := 0; x < xComp; x++ {
		for i := 0; i < w; i++ {
			cosX[x*w+i] = math.Cos(math.Pi * float64(x) * float64(i) / float64(w))
		}
	}
	cosY := make([]float64, yComp*h)
	for y := 0; y < yComp; y++ {
		for j := 0; j < h; j++ {
			cosY[y*h+j] = math.Cos(math.Pi * float64(y) * float64(j) / float64(h))
		}
	}
	// The basis is separable: sum each row against the x cosines first, then
	// add the row sums weighted with the y cosines.
	factors := make([]float64, 3*xComp*yComp) // [(y*xComp+x)*3 + channel]
	rowSum := make([]float64, 3*xComp)
	rgb := make([]float64, 3*w)
	for j := 0; j < h; j++ {
		blurhashRow(img, b.Min.X, b.Min.Y+j, w, &lin, rgb)
		clear(rowSum)
		for x := 0; x < xComp; x++ {
			cx := cosX[x*w : x*w+w]
			var r, g, bl float64
			for i, c := range cx {
				r += c * rgb[3*i]
				g += c * rgb[3*i+1]
				bl += c * rgb[3*i+2]
			}
			rowSum[3*x], rowSum[3*x+1], rowSum[3*x+2] = r, g, bl
		}
		for y := 0; y < yComp; y++ {
			cy := cosY[y*h+j]
			f := factors[3*y*xComp : 3*(y+1)*xComp]
			for k, v := range rowSum {
				f[k] += cy * v
			}
		}
	}
	scale := 1 / float64(w*h)
	for k := range factors {
		norm := 2.0
		if k < 3 {
			norm = 1 // the DC component
		}
		factors[k] *= norm * scale
	}

	hash := make([]byte, 0, 6+2*(xComp*yComp-1))
	hash = blurhashBase83(hash, (xComp-1)+(yComp-1)*9, 1)
	ac := factors[3:]
	maxAC := 1.0
	if len(ac) > 0 {
		actual := 0.0
		for _, v := range ac {
			actual = math.Max(actual, math.Abs(v))
		}
		q := int(math.Max(0, math.Min(82, math.Floor(actual*166-0.5))))
		maxAC = float64(q+1) / 166
		hash = blurhashBase83(hash, q, 1)
	} else {
		hash = blurhashBase83(hash, 0, 1)
	}
	dc := blurhashToSRGB(factors[0])<<16 | blurhashToSRGB(factors[1])<<8 | blurhashToSRGB(factors[2])
	hash = blurhashBase83(hash, dc, 4)
	for k := 0; k < len(ac); k += 3 {
		v := blurhashQuantAC(ac[k]/maxAC)*19*19 + blurhashQuantAC(ac[k+1]/maxAC)*19 + blurhashQuantAC(ac[k+2]/maxAC)
		hash = blurhashBase83(hash, v, 2)
	}
	return string(hash), nil
}

// blurhashRow stores the linear RGB of row y (w pixels from x0) in rgb.
func blurhashRow(img image.Image, x0, y, w int, lin *[256]float64, rgb []float64) {
	if m, ok := img.(*image.NRGBA); ok {
		p := m.Pix[m.PixOffset(x0, y):]
		for i := 0; i < w; i++ {
			rgb[3*i], rgb[3*i+1], rgb[3*i+2] = lin[p[4*i]], lin[p[4*i+1]], lin[p[4*i+2]]
		}
		return
	}
	if m, ok := img.(*image.RGBA); ok {
		p := m.Pix[m.PixOffset(x0, y):]
		for i := 0; i < w; i++ {
			q := p[4*i : 4*i+4]
			if q[3] != 0xff {
				c := color.NRGBAModel.Convert(color.RGBA{q[0], q[1], q[2], q[3]}).(color.NRGBA)
				rgb[3*i], rgb[3*i+1], rgb[3*i+2] = lin[c.R], lin[c.G], lin[c.B]
				continue
			}
			rgb[3*i], rgb[3*i+1], rgb[3*i+2] = lin[q[0]], lin[q[1]], lin[q[2]]
		}
		return
	}
	for i := 0; i < w; i++ {
		c := color.NRGBAModel.Convert(img.At(x0+i, y)).(color.NRGBA)
		rgb[3*i], rgb[3*i+1], rgb[3*i+2] = lin[c.R], lin[c.G], lin[c.B]
	}
}

func blurhashToLinear(v int) float64 {
	f := float64(v) / 255
	if f <= 0.04045 {
		return f / 12.92
	}
	return math.Pow((f+0.055)/1.055, 2.4)
}

func blurhashToSRGB(v float64) int {
	v = math.Max(0, math.Min(1, v))
	if v <= 0.0031308 {
		return int(v*12.92*255 + 0.5)
	}
	return int((1.055*math.Pow(v, 1/2.4)-0.055)*255 + 0.5)
}

// blurhashQuantAC maps v/maximum (in [-1, 1]) to 0..18 through a square root.
func blurhashQuantAC(v float64) int {
	s := math.Copysign(math.Sqrt(math.Abs(v)), v)
	return int(math.Max(0, math.Min(18, math.Floor(s*9+9.5))))
}

func blurhashBase83(dst []byte, v, n int) []byte {
	div := 1
	for i := 1; i < n; i++ {
		div *= 83
	}
	for ; n > 0; n-- {
		dst = append(dst, blurhashDigits[(v/div)%83])
		div /= 83
	}
	return dst
}
