package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuSnap is a reading of CPU time from /proc: the whole machine, this
// process, the server process and every process named postgres.
type cpuSnap struct {
	at                     time.Time
	busy, total, irq       uint64 // machine, in ticks (irq: hard and soft interrupts)
	self, server, postgres uint64 // ticks (utime+stime)
}

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

func readCPU(serverPID int) cpuSnap {
	s := cpuSnap{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			s.total += n
			if i != 3 && i != 4 { // idle, iowait
				s.busy += n
			}
			if i == 5 || i == 6 { // irq, softirq (loopback TCP lands here)
				s.irq += n
			}
		}
	}
	s.self = procTicks("/proc/self/stat")
	if serverPID > 0 {
		s.server = procTicks("/proc/" + strconv.Itoa(serverPID) + "/stat")
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		s.postgres += procTicks(d + "/stat")
	}
	return s
}

// procTicks is utime+stime of one process (fields 14 and 15 of stat).
func procTicks(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

// CPUShare is where CPU went between two readings, in percent of one core
// (a 2-core machine has 200).
type CPUShare struct {
	Cores    int     `json:"cores"`
	Machine  float64 `json:"machine_pct"`
	LoadGen  float64 `json:"loadgen_pct"`
	Server   float64 `json:"server_pct"`
	Postgres float64 `json:"postgres_pct"`
	IRQ      float64 `json:"irq_pct"`
	Other    float64 `json:"other_pct"` // other processes: noise on a shared machine
}

func cpuBetween(a, b cpuSnap, cores int) CPUShare {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return CPUShare{}
	}
	pct := func(d uint64) float64 { return float64(d) / clkTck / secs * 100 }
	c := CPUShare{Cores: cores, LoadGen: pct(b.self - a.self), Server: pct(b.server - a.server)}
	if b.postgres >= a.postgres {
		c.Postgres = pct(b.postgres - a.postgres)
	}
	if dt := b.total - a.total; dt > 0 {
		c.Machine = float64(b.busy-a.busy) / float64(dt) * 100 * float64(cores)
		c.IRQ = float64(b.irq-a.irq) / float64(dt) * 100 * float64(cores)
	}
	c.Other = max(0, c.Machine-c.LoadGen-c.Server-c.Postgres-c.IRQ)
	return c
}
