//go:build unix

package blob

import (
	"io/fs"
	"strconv"
	"syscall"
)

// localETag identifies one version of a file: a Put always renames a new
// inode into place, so size, modification time and inode number together
// change with every Put even when two land within the file system's
// timestamp granularity.
func localETag(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	return `"` + strconv.FormatInt(fi.Size(), 36) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + "-" + strconv.FormatUint(ino, 36) + `"`
}
