// Package canonjid parses JIDs (RFC 7622) into a canonical form that parses
// back to itself. mellium.im/xmpp/jid v0.22.0 normalises in one pass, which is not
// always idempotent: "localhost.." becomes "localhost." and only then
// "localhost", and some Unicode input normalises to a string that no longer
// parses (found by fuzzing). adhocd stores and compares the JIDs people type
// (accounts, admins, form values), so it parses them here: again and again
// until the string is stable, refusing a JID whose normal form does not
// parse.
package canonjid

import (
	"fmt"

	"mellium.im/xmpp/jid"
)

// maxRounds bounds the re-parsing; normalisation settles within two.
const maxRounds = 4

// Parse returns s as a JID whose String parses back to the same JID.
func Parse(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, err
	}
	return settle(j, s)
}

// New is jid.New with the same guarantee.
func New(local, domain, resource string) (jid.JID, error) {
	j, err := jid.New(local, domain, resource)
	if err != nil {
		return jid.JID{}, err
	}
	return settle(j, local+"@"+domain+"/"+resource)
}

func settle(j jid.JID, s string) (jid.JID, error) {
	for i := 0; i < maxRounds; i++ {
		k, err := jid.Parse(j.String())
		if err != nil {
			return jid.JID{}, fmt.Errorf("canonjid: %q normalises to %q, which is not a valid JID: %w", s, j, err)
		}
		if k.String() == j.String() {
			return k, nil
		}
		j = k
	}
	return jid.JID{}, fmt.Errorf("canonjid: %q does not settle to a canonical form", s)
}
