//go:build !linux

package aiagent

import (
	"errors"
	"io/fs"
	"os"
)

// keyOf is Linux-only: the plugin reads /proc, which only Linux has in the
// form it needs. Elsewhere the package builds but attests nothing.
func keyOf(fs.FileInfo) (fileKey, error) {
	return fileKey{}, errors.New("aiagent: unsupported platform")
}

func checkNotPseudoFS(*os.File) error {
	return errors.New("aiagent: unsupported platform")
}

func openRegularInRoot(*os.Root, string, int64) (*os.File, error) {
	return nil, errors.New("aiagent: unsupported platform")
}
