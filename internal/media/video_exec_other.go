//go:build !linux

package media

import (
	"os"
	"syscall"
)

// videoSysProcAttr: outside Linux there is no parent-death signal; the tool
// is only killed when its context ends.
func videoSysProcAttr() *syscall.SysProcAttr { return nil }

func videoKill(p *os.Process) error {
	if p == nil {
		return nil
	}
	return p.Kill()
}
