package canonjid_test

import (
	"testing"

	"github.com/adhocd/adhocd/canonjid"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Localhost":    "alice@localhost",
		"alice@localhost..":  "alice@localhost", // mellium alone gives alice@localhost.
		"localhost./res":     "localhost/res",
		"john+doe@localhost": "john+doe@localhost",
	} {
		j, err := canonjid.Parse(in)
		if err != nil || j.String() != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, j, err, want)
		}
		again, err := canonjid.Parse(j.String())
		if err != nil || again.String() != j.String() {
			t.Errorf("Parse(%q) is not a fixed point: %q, %v", j, again, err)
		}
	}
	// Found by fuzzing: normalises to a string that does not parse.
	if j, err := canonjid.Parse("ℶA"); err == nil {
		if _, err := canonjid.Parse(j.String()); err != nil {
			t.Fatalf("Parse(ℶA) = %q, which does not parse again", j)
		}
	}
	if _, err := canonjid.New("john+doe", "localhost", ""); err != nil {
		t.Fatal(err)
	}
}
