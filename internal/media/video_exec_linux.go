package media

import (
	"os"
	"syscall"
)

// videoSysProcAttr starts the tool in its own process group (so that it and
// anything it starts can be killed together) and asks the kernel to SIGKILL
// it when the thread that started it dies, which covers this process being
// killed with SIGKILL.
func videoSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// videoKill kills the tool's whole process group.
func videoKill(p *os.Process) error {
	if p == nil {
		return nil
	}
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		return p.Kill()
	}
	return nil
}
