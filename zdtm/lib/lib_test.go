package lib

import "testing"

func TestParseOpts(t *testing.T) {
	o, err := ParseOpts([]string{"--pidfile=/a/p", "--outfile", "/a/o", "--filename=x=y"})
	if err != nil {
		t.Fatal(err)
	}
	if o["pidfile"] != "/a/p" || o["outfile"] != "/a/o" || o["filename"] != "x=y" {
		t.Fatalf("got %v", o)
	}
	for _, bad := range [][]string{{"counter"}, {"--outfile"}, {"--"}, {"-x=1"}} {
		if _, err := ParseOpts(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
