package hclkeys_test

import (
	"slices"
	"testing"

	"github.com/agentid/agentid/pkg/plugin/internal/hclkeys"
	"github.com/hashicorp/hcl"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		hcl               string
		unknown, repeated []string
	}{
		{`a = 1` + "\n" + `b = "x"`, nil, nil},
		{`a = 1` + "\n" + `zz = 2` + "\n" + `c = 3` + "\n" + `zz = 4`, []string{"c", "zz"}, nil},
		{`a = 1` + "\n" + `a = 2` + "\n" + `"b" = 3` + "\n" + `b = 4`, nil, []string{"a", "b"}},
	}
	for _, tt := range tests {
		file, err := hcl.Parse(tt.hcl)
		if err != nil {
			t.Fatal(err)
		}
		unknown, repeated, ok := hclkeys.Check(file, []string{"a", "b"})
		if !ok || !slices.Equal(unknown, tt.unknown) || !slices.Equal(repeated, tt.repeated) {
			t.Errorf("%q: unknown %v repeated %v ok %v, want %v %v", tt.hcl, unknown, repeated, ok, tt.unknown, tt.repeated)
		}
	}
}
