package modules

import "time"

// Stamp writes t as a XEP-0082 DateTime in UTC with milliseconds, the form
// every XEP-0203 delay and XEP-0313 result of the server carries. Clients
// parse at most microseconds (slixmpp 1.8's xep_0082 refuses nine digits),
// so the nanoseconds of time.RFC3339Nano are not used.
func Stamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
