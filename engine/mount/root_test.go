package mount

import (
	"strings"
	"testing"

	mnt "github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"google.golang.org/protobuf/proto"
)

// --root at restore is needed exactly when the dump had it: given for
// images made without it, it would be accepted and ignored.
func TestCheckRestoreRoot(t *testing.T) {
	dir := t.TempDir()
	withRoot := []*mnt.MntEntry{{MntId: proto.Uint32(1), Mountpoint: proto.String("/"), ExtMount: proto.Bool(true), ExtKey: proto.String(RootKey)}}
	without := []*mnt.MntEntry{{MntId: proto.Uint32(1), Mountpoint: proto.String("/"), ExtMount: proto.Bool(true), ExtKey: proto.String(HostKeyPrefix + "/srv/root")}}
	for _, c := range []struct {
		entries []*mnt.MntEntry
		root    string
		want    string // "" for no error
	}{
		{withRoot, dir, ""},
		{withRoot, "", "restore needs --root"},
		{withRoot, dir + "/missing", "no such file"},
		{withRoot, "relative", "no such file"},
		{without, "", ""},
		{without, dir, "dumped without --root"},
		{nil, dir, "dumped without --root"},
	} {
		err := CheckRestoreRoot(c.entries, c.root)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("root %q: %v", c.root, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("root %q: %v, want %q", c.root, err, c.want)
		}
	}
}
