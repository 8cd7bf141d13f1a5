package licenses

import (
	"slices"
	"strings"
)

// A license is recognised when its text holds every one of its clauses.
// Texts and clauses are compared normalised: lower case, every run of
// characters other than letters and digits made one space, so line breaks,
// comment markers, bullets and quotes do not matter.
type license struct {
	id      string
	clauses []string
	// unless lists clauses whose presence makes the text another licence
	// (BSD-3-Clause holds every clause of BSD-2-Clause).
	unless []string
}

// Clauses shared by several entries of known.
const (
	bsdGrant    = "redistribution and use in source and binary forms with or without modification are permitted provided that the following conditions are met"
	bsdSource   = "redistributions of source code must retain the above copyright notice"
	bsdBinary   = "redistributions in binary form must reproduce the above copyright notice"
	bsdEndorse  = "may be used to endorse or promote products derived from this software without specific prior written permission"
	bsdAdvertis = "all advertising materials mentioning features or use of this software must display the following acknowledgement"
)

// known are the licences Identify recognises: the accepted ones by their
// clauses, and the common ones that are not accepted by their titles, so
// that a refusal names them.
var known = []license{
	{id: "Apache-2.0", clauses: []string{"apache license version 2 0"}},
	{id: "MIT", clauses: []string{
		"permission is hereby granted free of charge to any person obtaining a copy",
		"the above copyright notice and this permission notice shall be included in all copies or substantial portions of the software",
		"the software is provided as is without warranty of any kind",
	}},
	{id: "ISC", clauses: []string{
		"permission to use copy modify and distribute this software for any purpose with or without fee is hereby granted",
		"the software is provided as is and the author disclaims all warranties",
	}},
	{id: "ISC", clauses: []string{
		"permission to use copy modify and or distribute this software for any purpose with or without fee is hereby granted",
		"the software is provided as is and the author disclaims all warranties",
	}},
	{id: "BSD-3-Clause", clauses: []string{bsdGrant, bsdSource, bsdBinary, bsdEndorse}, unless: []string{bsdAdvertis}},
	{id: "BSD-2-Clause", clauses: []string{bsdGrant, bsdSource, bsdBinary}, unless: []string{bsdEndorse, bsdAdvertis}},
	{id: "BSD-4-Clause", clauses: []string{bsdGrant, bsdAdvertis}},
	{id: "MPL-2.0", clauses: []string{"mozilla public license version 2 0"}},
	// The FSF's licences by their titles (with their dates) or by the
	// notice that applies them: MPL-2.0 names them too, as its secondary
	// licences, but in neither form.
	{id: "GPL", clauses: []string{"gnu general public license version 1 february 1989"}},
	{id: "GPL", clauses: []string{"gnu general public license version 2 june 1991"}},
	{id: "GPL", clauses: []string{"gnu general public license version 3 29 june 2007"}},
	{id: "GPL", clauses: []string{"the terms of the gnu general public license as published by the free software foundation"}},
	{id: "LGPL", clauses: []string{"gnu library general public license version 2 june 1991"}},
	{id: "LGPL", clauses: []string{"gnu lesser general public license version 2 1 february 1999"}},
	{id: "LGPL", clauses: []string{"gnu lesser general public license version 3 29 june 2007"}},
	{id: "LGPL", clauses: []string{"the terms of the gnu lesser general public license as published by the free software foundation"}},
	{id: "AGPL", clauses: []string{"gnu affero general public license version 3 19 november 2007"}},
	{id: "AGPL", clauses: []string{"the terms of the gnu affero general public license as published by the free software foundation"}},
	{id: "SSPL", clauses: []string{"server side public license"}},
	{id: "BUSL", clauses: []string{"business source license"}},
	{id: "Commons-Clause", clauses: []string{"commons clause license condition"}},
	{id: "CC-BY-NC", clauses: []string{"creative commons attribution noncommercial"}},
	{id: "Unlicense", clauses: []string{"this is free and unencumbered software released into the public domain"}},
}

// Identify returns the SPDX identifiers (or, for licences that are not
// accepted, a family name such as GPL) of the licences whose clauses text
// holds, sorted; nil when it recognises none. A file holding several
// licences (Apache-2.0 with a BSD appendix) gives them all.
func Identify(text []byte) []string {
	norm := normalize(string(text))
	var ids []string
	for _, l := range known {
		if slices.ContainsFunc(l.unless, func(c string) bool { return strings.Contains(norm, c) }) {
			continue
		}
		if !slices.ContainsFunc(l.clauses, func(c string) bool { return !strings.Contains(norm, c) }) {
			ids = append(ids, l.id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// normalize lowers text and makes each run of characters other than ASCII
// letters and digits a single space.
func normalize(text string) string {
	var b strings.Builder
	b.Grow(len(text) + 2)
	b.WriteByte(' ')
	space := true
	for _, r := range strings.ToLower(text) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
			space = false
		} else if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	return b.String()
}
