// Package hclkeys finds the unknown and repeated top-level keys of a plugin's
// HCL configuration. HCL v1 decodes into a struct silently ignoring keys it
// does not know (its ",unusedKeys" tag is never filled), and a typo in a
// security setting must not be silently ignored, so the plugins walk the
// parsed tree with this before decoding.
package hclkeys

import (
	"slices"

	"github.com/hashicorp/hcl/hcl/ast"
)

// Check returns the top-level keys of file that are not in known, and the
// known keys given more than once, each sorted and without repeats. ok is
// false when file is not an HCL object.
func Check(file *ast.File, known []string) (unknown, repeated []string, ok bool) {
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return nil, nil, false
	}
	seen := make(map[string]bool)
	for _, item := range list.Items {
		if len(item.Keys) == 0 {
			continue
		}
		key := item.Keys[0].Token.Text
		if v, isString := item.Keys[0].Token.Value().(string); isString {
			key = v
		}
		switch {
		case !slices.Contains(known, key):
			unknown = append(unknown, key)
		case seen[key]:
			repeated = append(repeated, key)
		}
		seen[key] = true
	}
	slices.Sort(unknown)
	slices.Sort(repeated)
	return slices.Compact(unknown), slices.Compact(repeated), true
}
