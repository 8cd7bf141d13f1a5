package mam

import (
	"testing"
	"time"
)

// TestWidenEnd: an end written in milliseconds (the stamps the server
// sends) or in whole seconds takes all of its unit, so that the message of
// that very stamp, stored to the nanosecond, is within it; a finer end is
// taken as written.
func TestWidenEnd(t *testing.T) {
	base := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ in, want time.Time }{
		{time.Time{}, time.Time{}},
		{base, base.Add(time.Second - 1)},
		{base.Add(250 * time.Millisecond), base.Add(251*time.Millisecond - 1)},
		{base.Add(250*time.Millisecond + 7*time.Microsecond), base.Add(250*time.Millisecond + 7*time.Microsecond)},
	} {
		if got := widenEnd(tc.in); !got.Equal(tc.want) {
			t.Errorf("widenEnd(%s) = %s, want %s", tc.in.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), tc.want.Format(time.RFC3339Nano))
		}
	}
	stored := base.Add(250*time.Millisecond + 123456)
	if sent, _ := time.Parse(time.RFC3339Nano, stored.Format("2006-01-02T15:04:05.000Z")); widenEnd(sent).Before(stored) {
		t.Errorf("a message stamped %s is not within an end of its own stamp", stored.Format(time.RFC3339Nano))
	}
}
