// Command transcode measures the video job's transcoding (issue 4): the
// whole HLS ladder in one ffmpeg process (media.Transcode, plus
// media.Thumbnail) against the same ladder made by one ffmpeg process per
// rendition in sequence (each decoding the source), with the same encoder
// settings (media.Transcode with one rendition at a time).
//
//	go run ./bench/transcode                 # 60 s 1080p30 source, default ladder
//	go run ./bench/transcode -runs 3 -keep   # repeat, keep the generated source
//
// It reports wall and CPU time (user+system of the ffmpeg processes) and the
// two ratios of the goal:
//
//	wall_ours / wall_seq              goal <= 0.8
//	wall_ours / (cpu_ours / cores)    goal <= 1.15
//
// The machine should be otherwise idle: the 1-minute load average is printed
// next to each measurement.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"plaza/internal/media"
)

type measure struct{ wall, cpu time.Duration }

var waitIdle time.Duration

func main() {
	var (
		dir      = flag.String("dir", filepath.Join(os.TempDir(), "plaza-transcode-bench"), "work directory")
		seconds  = flag.Int("seconds", 60, "length of the generated source")
		size     = flag.String("size", "1920x1080", "size of the generated source")
		keep     = flag.Bool("keep", false, "keep (and reuse) the generated source")
		runs     = flag.Int("runs", 1, "measurements of each variant, interleaved")
		res      = flag.String("resolutions", "360p,480p,720p,1080p", "ladder (PLAZA_VIDEO_RESOLUTIONS)")
		preset   = flag.String("preset", "veryfast", "x264 preset")
		threads  = flag.Int("threads", 0, "TranscodeOptions.Threads (0: ffmpeg's defaults)")
		skipSeq  = flag.Bool("skip-seq", false, "measure only the one-process ladder")
		ffmpeg   = flag.String("ffmpeg", "ffmpeg", "ffmpeg binary")
		ffprobe  = flag.String("ffprobe", "ffprobe", "ffprobe binary")
		segments = flag.Int("segment", 4, "segment length, seconds")
		idle     = flag.Duration("wait-idle", 0, "before each measurement, wait up to this long for the machine to be idle")
	)
	flag.Parse()
	waitIdle = *idle
	if err := run(*dir, *seconds, *size, *keep, *runs, *res, *preset, *threads, *skipSeq, *ffmpeg, *ffprobe, *segments); err != nil {
		fmt.Fprintln(os.Stderr, "transcode bench:", err)
		os.Exit(1)
	}
}

func run(dir string, seconds int, size string, keep bool, runs int, resolutions, preset string, threads int, skipSeq bool, ffmpeg, ffprobe string, seg int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src := filepath.Join(dir, fmt.Sprintf("source-%s-%ds.mp4", size, seconds))
	if !keep {
		defer os.Remove(src)
	}
	if _, err := os.Stat(src); err != nil {
		fmt.Printf("generating %s, %d s, 30 fps, noise + sine ...\n", size, seconds)
		start := time.Now()
		cmd := exec.Command(ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y",
			"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30,noise=alls=8:allf=t",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-t", fmt.Sprint(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "60",
			"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", src)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("generate source: %w", err)
		}
		fmt.Printf("generated in %v\n", time.Since(start).Round(time.Second))
	}
	ctx := context.Background()
	names, err := media.ParseVideoResolutions(resolutions)
	if err != nil {
		return err
	}
	p, err := media.ProbeVideo(ctx, ffprobe, src, "mov", 0)
	if err != nil {
		return err
	}
	ladder := media.Ladder(p, names)
	st, _ := os.Stat(src)
	fmt.Printf("source: %dx%d %.1f fps %.1f s %s/%s, %.1f MB (%.1f Mbit/s)\n", p.Width, p.Height, p.FrameRate, p.Duration,
		p.VideoCodec, p.AudioCodec, float64(st.Size())/1e6, float64(p.Bitrate)/1e6)
	var rungs []string
	for _, r := range ladder {
		rungs = append(rungs, fmt.Sprintf("%s %dx%d %dk", r.Name, r.Width, r.Height, r.VideoBitrate/1000))
	}
	cores := runtime.NumCPU()
	fmt.Printf("ladder: %s; preset %s, threads %d, %d s segments; %d cores\n\n", strings.Join(rungs, ", "), preset, threads, seg, cores)

	opts := func(out string, rs []media.Rendition) media.TranscodeOptions {
		return media.TranscodeOptions{FFmpeg: ffmpeg, Input: src, Format: "mov", OutDir: out, Renditions: rs,
			HasAudio: p.HasAudio, Duration: p.Duration, SegmentSeconds: seg, Preset: preset, Threads: threads}
	}
	others := func(busy0 time.Duration, m measure) float64 {
		return (machineBusy() - busy0 - m.cpu).Seconds() / m.wall.Seconds()
	}
	var best struct{ ours, oursNoThumb, seq measure }

	for i := range runs {
		// Alternate the order so that neither variant always runs first.
		order := []string{"ours", "seq"}
		if i%2 == 1 {
			order = []string{"seq", "ours"}
		}
		for _, which := range order {
			if which == "seq" && skipSeq {
				continue
			}
			out := filepath.Join(dir, "out-"+which)
			_ = os.RemoveAll(out)
			waitForIdle()
			load0 := loadavg()
			busy0 := machineBusy()
			cpu0 := childCPU()
			start := time.Now()
			switch which {
			case "ours":
				res, err := media.Transcode(ctx, opts(out, ladder))
				if err != nil {
					return err
				}
				tWall, tCPU := time.Since(start), childCPU()-cpu0
				if err := media.Thumbnail(ctx, ffmpeg, src, "mov", filepath.Join(out, "thumb.jpg"), p.Duration); err != nil {
					return err
				}
				m := measure{time.Since(start), childCPU() - cpu0}
				fmt.Printf("run %d one process : wall %6.1fs cpu %6.1fs (transcode %5.1fs wall, %5.1fs cpu [ffmpeg says %5.1fs]; thumbnail %4.2fs wall)  ratio %.3f  load %.1f->%.1f, others %.2f cores\n",
					i+1, m.wall.Seconds(), m.cpu.Seconds(), tWall.Seconds(), tCPU.Seconds(), res.CPUTime.Seconds(),
					(m.wall - tWall).Seconds(), m.wall.Seconds()/(m.cpu.Seconds()/float64(cores)), load0, loadavg(), others(busy0, m))
				if i == 0 {
					for _, r := range res.Renditions {
						fmt.Printf("    %-6s %4dx%-4d BANDWIDTH %8d AVERAGE %8d %s, %d segments\n", r.Name, r.Width, r.Height,
							r.Bandwidth, r.AverageBandwidth, r.Codecs, res.Segments[r.Name])
					}
				}
				if best.ours.wall == 0 || m.wall < best.ours.wall {
					best.ours = m
					best.oursNoThumb = measure{tWall, tCPU}
				}
			case "seq":
				var parts []string
				for _, r := range ladder {
					t0, c0 := time.Now(), childCPU()
					if _, err := media.Transcode(ctx, opts(filepath.Join(out, r.Name), []media.Rendition{r})); err != nil {
						return err
					}
					parts = append(parts, fmt.Sprintf("%s %.1f/%.1f", r.Name, time.Since(t0).Seconds(), (childCPU()-c0).Seconds()))
				}
				m := measure{time.Since(start), childCPU() - cpu0}
				fmt.Printf("run %d sequential  : wall %6.1fs cpu %6.1fs (wall/cpu: %s)  load %.1f->%.1f, others %.2f cores\n",
					i+1, m.wall.Seconds(), m.cpu.Seconds(), strings.Join(parts, ", "), load0, loadavg(), others(busy0, m))
				if best.seq.wall == 0 || m.wall < best.seq.wall {
					best.seq = m
				}
			}
			_ = os.RemoveAll(out)
		}
	}

	fmt.Println()
	o := best.ours
	util := o.wall.Seconds() / (o.cpu.Seconds() / float64(cores))
	fmt.Printf("one process (transcode + thumbnail), best of %d: wall %.1fs, cpu %.1fs\n", runs, o.wall.Seconds(), o.cpu.Seconds())
	fmt.Printf("  wall / (cpu / %d cores) = %.3f   (goal <= 1.15)\n", cores, util)
	fmt.Printf("  without the thumbnail:   %.3f\n", best.oursNoThumb.wall.Seconds()/(best.oursNoThumb.cpu.Seconds()/float64(cores)))
	if !skipSeq {
		s := best.seq
		fmt.Printf("sequential, one ffmpeg per rendition, best of %d: wall %.1fs, cpu %.1fs\n", runs, s.wall.Seconds(), s.cpu.Seconds())
		fmt.Printf("  wall_ours / wall_seq = %.3f   (goal <= 0.8; without the thumbnail %.3f)\n",
			o.wall.Seconds()/s.wall.Seconds(), best.oursNoThumb.wall.Seconds()/s.wall.Seconds())
		fmt.Printf("  cpu_ours / cpu_seq   = %.3f\n", o.cpu.Seconds()/s.cpu.Seconds())
	}
	return nil
}

// childCPU is the user+system time of all waited-for child processes so far.
func childCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

// machineBusy is the CPU time all processes have used since boot
// (/proc/stat; 0 where there is none).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		var n int64
		fmt.Sscan(v, &n)
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}

// waitForIdle waits (up to -wait-idle) until the other processes use less
// than a fifth of a core for 5 s.
func waitForIdle() {
	if waitIdle <= 0 {
		return
	}
	deadline := time.Now().Add(waitIdle)
	for time.Now().Before(deadline) {
		b0 := machineBusy()
		time.Sleep(5 * time.Second)
		if (machineBusy()-b0).Seconds()/5 < 0.2 {
			return
		}
	}
	fmt.Println("(the machine did not become idle; measuring anyway)")
}
