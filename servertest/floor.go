package servertest

import (
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
)

// DiskFloor is what the tests of limits.min_free_disk_bytes share: a bbolt
// store in a folder of the test's (the floor is measured on the store's
// filesystem, so these tests run on the embedded backend whatever
// BackendEnv asks), closed at the test's cleanup, whose floor Raise puts
// above the real free space and Lower takes away again.
type DiskFloor struct {
	// Dir is the store's folder, for Config.
	Dir   string
	Store *storage.Bolt
	t     testing.TB
}

// NewDiskFloor opens the store, its floor not yet raised.
func NewDiskFloor(t *testing.T) *DiskFloor {
	t.Helper()
	Embedded(t)
	dir := t.TempDir()
	st, err := storage.Open(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &DiskFloor{Dir: dir, Store: st, t: t}
}

// Raise sets the floor 1 GiB above the free space of the store's
// filesystem now: every write the floor guards is refused from then on.
func (f *DiskFloor) Raise() {
	f.t.Helper()
	free, err := f.Store.FreeDisk()
	if err != nil {
		f.t.Fatal(err)
	}
	f.Store.SetMinFreeDisk(free + 1<<30)
}

// Lower takes the floor away.
func (f *DiskFloor) Lower() { f.Store.SetMinFreeDisk(0) }
