package storage

import (
	"encoding/json"
	"testing"
)

// TestArchivedEncoding: a message comes back as it was kept, in the
// format of now and in the JSON the first archives kept.
func TestArchivedEncoding(t *testing.T) {
	want := ArchivedMessage{With: "bob@example.org/☃", XML: `<message xmlns="jabber:client" type="chat"><body>a &lt; b &amp; "c"</body></message>`}
	v, err := encodeArchived(want)
	if err != nil {
		t.Fatal(err)
	}
	old, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"v1": v, "json": old, "empty with": {archivedV1, 0}} {
		var got ArchivedMessage
		if err := decodeArchived(b, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "empty with" {
			if got.With != "" || got.XML != "" {
				t.Errorf("%s: %+v", name, got)
			}
			continue
		}
		if got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	if err := decodeArchived([]byte{archivedV1, 200}, new(ArchivedMessage)); err == nil {
		t.Error("a length past the value was read")
	}
}
