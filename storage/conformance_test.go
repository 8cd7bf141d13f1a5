package storage_test

import (
	"testing"
	"time"

	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/storagetest"
)

// TestConformance runs the storage conformance suite on the bbolt store,
// opened as the server opens it (login times written behind, after a
// second), each case in a folder of its own.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		st, err := storage.Open(t.TempDir(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := st.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return st
	})
}
