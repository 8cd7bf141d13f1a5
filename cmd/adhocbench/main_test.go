package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/server/config"
	"github.com/adhocd/adhocd/server/servertest"
)

func start(t *testing.T) *servertest.Server {
	t.Helper()
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())}, func(c *config.Config) {
		c.C2S.RequireTLS = false
		c.C2S.AllowPlainWithoutTLS = true
		for i := 0; i < 4; i++ {
			c.Admins = append(c.Admins, fmt.Sprintf("bench%d@localhost", i))
		}
	})
	for i := 0; i < 4; i++ {
		srv.AddUser(fmt.Sprintf("bench%d", i), "pw")
	}
	return srv
}

func bench(t *testing.T, srv *servertest.Server, args ...string) report {
	t.Helper()
	var out, errb strings.Builder
	full := append([]string{"--server", srv.Addr, "--password", "pw", "--json"}, args...)
	if err := run(full, &out, &errb); err != nil {
		t.Fatalf("adhocbench: %v\n%s", err, errb.String())
	}
	var r report
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	return r
}

func TestOneStageCount(t *testing.T) {
	srv := start(t)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256"} {
		r := bench(t, srv, "--clients", "4", "--count", "50", "--mech", mech)
		if r.Requests != 200 || r.Flows != 200 || len(r.Errors) != 0 || r.LoginErrors != 0 {
			t.Fatalf("%s: %+v", mech, r)
		}
		if r.Latency["p99"].(float64) <= 0 || r.ReqPerSec <= 0 {
			t.Fatalf("%s: no latency or rate: %+v", mech, r)
		}
	}
}

func TestTLSAndFlow(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--clients", "2", "--count", "10", "--tls", "--node", adhoctest.WizardNode,
		"--flow", "next:name=Ann,color=red;next:contact=a@localhost;complete:comment=ok")
	if r.Flows != 20 || r.Requests != 80 || r.Stages != 4 || len(r.Errors) != 0 {
		t.Fatalf("flow: %+v", r)
	}
}

// TestUnfinishedFlowIsNotCounted: a multi-stage node run without its flow
// answers "executing"; that is a request, not a completed flow.
func TestUnfinishedFlowIsNotCounted(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--clients", "1", "--count", "3", "--node", adhoctest.WizardNode)
	if r.Requests != 3 || r.Flows != 0 || len(r.Errors) != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestErrorsCountedByCondition(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--clients", "1", "--count", "5", "--node", "urn:nothing")
	if r.Errors["item-not-found"] != 5 || r.Flows != 0 {
		t.Fatalf("errors: %+v", r)
	}
}

func TestIdle(t *testing.T) {
	srv := start(t)
	var out, errb strings.Builder
	if err := run([]string{"--server", srv.Addr, "--password", "pw", "--idle", "4", "--duration", "300ms", "--json"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"idle_connections":4`) {
		t.Fatalf("idle: %q", out.String())
	}
}

// TestLogins: the login mode counts bound logins and failed ones by their
// SASL condition.
func TestLogins(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--logins", "--clients", "2", "--count", "5", "--mech", "SCRAM-SHA-1")
	if r.Requests != 10 || r.Flows != 10 || len(r.Errors) != 0 || r.Node != "login SCRAM-SHA-1" {
		t.Fatalf("logins: %+v", r)
	}
	bad := bench(t, srv, "--logins", "--clients", "1", "--count", "2", "--password", "wrong")
	if bad.Flows != 0 || bad.Errors["not-authorized"] != 2 {
		t.Fatalf("wrong password: %+v", bad)
	}
	// Each login closed its stream: the server lets go of every session.
	for deadline := time.Now().Add(5 * time.Second); len(srv.Sessions()) != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left bound after the logins", len(srv.Sessions()))
		}
	}
}
