//go:build !unix

package blob

import (
	"io/fs"
	"strconv"
)

// localETag identifies one version of a file by its size and modification
// time.
func localETag(fi fs.FileInfo) string {
	return `"` + strconv.FormatInt(fi.Size(), 36) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + `"`
}
