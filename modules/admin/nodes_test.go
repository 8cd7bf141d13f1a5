package admin_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/modules/admin/nodes"
)

// TestOperatorNames: the operator commands an administrator is offered are
// exactly nodes.OperatorNames, the list adhocctl resolves its short names
// with (status → urn:adhocd:admin#status), so the two cannot drift apart.
func TestOperatorNames(t *testing.T) {
	e := setup(t)
	cmds, err := e.root.Commands(ctx(t), domain)
	if err != nil {
		t.Fatal(err)
	}
	var offered []string
	for _, cmd := range cmds {
		if name, ok := strings.CutPrefix(cmd.Node, nodes.NSOperator+"#"); ok {
			offered = append(offered, name)
			if !nodes.IsOperator(name) {
				t.Errorf("the server offers %s, which nodes.IsOperator does not know", cmd.Node)
			}
		}
	}
	want := nodes.OperatorNames()
	slices.Sort(offered)
	slices.Sort(want)
	if !slices.Equal(offered, want) {
		t.Fatalf("operator commands offered %v, nodes.OperatorNames %v", offered, want)
	}
}
