package media

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

// BenchmarkProcessImage processes a 12 MP (4000x3000) camera-like JPEG with
// the default options. Besides time and B/op (everything allocated per call)
// it reports peak-heap-MB: the largest heap growth seen during one call run
// with an aggressive GC, i.e. about the memory one decode really holds.
func BenchmarkProcessImage(b *testing.B) {
	const w, h = 4000, 3000
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	// Smooth gradients plus some texture, so the file has a realistic size.
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Y[y*m.YStride+x] = uint8((x/3 + y/5 + (x*y)%17) & 0xff)
		}
	}
	for y := 0; y < h/2; y++ {
		for x := 0; x < w/2; x++ {
			m.Cb[y*m.CStride+x] = uint8(x * 255 / (w / 2))
			m.Cr[y*m.CStride+x] = uint8(y * 255 / (h / 2))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	m = nil
	runtime.GC()
	peak := imgPeakHeapMB(b, data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		out, err := ProcessImage(ctx, bytes.NewReader(data), int64(len(data)), ImageOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if out.Width != 2048 || out.Height != 1536 {
			b.Fatalf("main %dx%d", out.Width, out.Height)
		}
	}
	b.ReportMetric(peak, "peak-heap-MB") // after b.Loop, which resets metrics
}

// imgPeakHeapMB runs ProcessImage once on data with GOGC=5 while sampling the
// heap every 100µs, and returns the largest growth over the starting heap.
func imgPeakHeapMB(b *testing.B, data []byte) float64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var (
		peak uint64
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	wg.Go(func() {
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				peak = max(peak, read())
			}
		}
	})
	if _, err := ProcessImage(context.Background(), bytes.NewReader(data), int64(len(data)), ImageOptions{}); err != nil {
		b.Fatal(err)
	}
	close(done)
	wg.Wait()
	if peak < base {
		return 0
	}
	return float64(peak-base) / (1 << 20)
}
