package helm_test

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/adhocd/adhocd/config"
)

// checkComponentsValues checks ci/components-values.yaml: every muc value
// in the config.yaml adhocd loads, and the two XEP-0114 components: the
// listener on its own port, each secret_file a key of the component's
// existing Secret mounted read-only (no secret in the ConfigMap, no Secret
// rendered for it), the pod's port, the components Service and the
// NetworkPolicy letting only components.allowedFrom reach the port.
func checkComponentsValues(t *testing.T, r rendered) {
	t.Helper()
	cfg := loadConfig(t, r.configMaps["chat-adhocd"])
	wantMUC := config.MUC{Enabled: true, Domain: "rooms.chat.example.org", Name: "Rooms of chat.example.org",
		MaxRooms: 500, MaxRoomsPerUser: 10, MaxOccupants: 200, HistoryLength: 20, MaxAffiliations: 300,
		MaxSubjectBytes: 512, MaxMessageBytes: 8192, ArchiveMaxMessages: 2000,
		ArchiveRetention: config.Duration(720 * time.Hour), MessageRate: 2.5, MessageBurst: 10}
	if cfg.MUC != wantMUC {
		t.Fatalf("rendered muc:\n %+v\nwant\n %+v", cfg.MUC, wantMUC)
	}

	co := cfg.Components
	wantServices := []config.ComponentService{
		{Domain: "gateway.chat.example.org", SecretFile: "/etc/adhocd/components/gateway.chat.example.org/secret"},
		{Domain: "bot.chat.example.org", SecretFile: "/etc/adhocd/components/bot.chat.example.org/secret"},
	}
	if co.Listen != ":5348" || !slices.Equal(co.Services, wantServices) {
		t.Fatalf("rendered components: %+v", co)
	}
	// The secrets stay in their Secrets: the chart renders none for them.
	if len(r.secrets) != 1 || r.secrets[0].Name != "chat-adhocd-admin" {
		t.Fatalf("rendered Secrets beside the administrator's: %d", len(r.secrets))
	}

	pod := r.statefulSet.Spec.Template.Spec
	c := pod.Containers[0]
	for _, s := range []struct{ file, secret, key string }{
		{co.Services[0].SecretFile, "chat-components", "gateway"},
		{co.Services[1].SecretFile, "chat-bot", "secret"}, // key left out: "secret"
	} {
		if secret, key := secretFile(pod, c, s.file); secret != s.secret || key != s.key {
			t.Errorf("secret_file %s comes from Secret %q key %q, want %s/%s", s.file, secret, key, s.secret, s.key)
		}
		v := mountedVolume(pod, c, s.file)
		if v == nil {
			continue
		}
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == v.Name })
		if m := c.VolumeMounts[i]; !m.ReadOnly || m.SubPath != "" {
			// A subPath mount would never see the Secret's updates.
			t.Errorf("the mount of %s is not a read-only folder: %+v", s.file, m)
		}
	}

	_, port, err := net.SplitHostPort(co.Listen)
	if err != nil {
		t.Fatal(err)
	}
	p := containerPort(c, "xmpp-component")
	if p == nil || p.ContainerPort != 5348 || port != "5348" || p.Protocol != corev1.ProtocolTCP {
		t.Fatalf("container port xmpp-component %+v, components.listen %q", p, co.Listen)
	}

	svc := service(r, "chat-adhocd-components")
	if svc == nil || svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Annotations["example.org/components"] != "true" ||
		svc.Labels["app.kubernetes.io/component"] != "components" || len(svc.Spec.Ports) != 1 {
		t.Fatalf("components Service: %+v", svc)
	}
	if sp := servicePort(svc, "xmpp-component"); sp == nil || sp.Port != 5348 || sp.TargetPort.StrVal != "xmpp-component" || sp.Protocol != corev1.ProtocolTCP {
		t.Fatalf("components Service port: %+v", sp)
	}
	if !matches(svc.Spec.Selector, r.statefulSet.Spec.Template.Labels) {
		t.Fatalf("the components Service selects %v, not the pod's labels %v", svc.Spec.Selector, r.statefulSet.Spec.Template.Labels)
	}
	// The c2s Service stays the first one (the test pod's), and carries no component port.
	if r.services[0].Name != "chat-adhocd" || servicePort(r.services[0], "xmpp-component") != nil {
		t.Fatalf("first Service %s, its ports %+v", r.services[0].Name, r.services[0].Spec.Ports)
	}
	if sp := servicePort(service(r, "chat-adhocd-headless"), "xmpp-component"); sp == nil || sp.Port != 5348 {
		t.Fatalf("headless Service port xmpp-component: %+v", sp)
	}

	np := r.networkPolicy
	if np == nil || len(np.Spec.Ingress) != 3 {
		t.Fatalf("NetworkPolicy: %+v", np)
	}
	for i, rule := range np.Spec.Ingress[:2] {
		if slices.Contains(policyPorts(rule), "xmpp-component") {
			t.Fatalf("rule %d (clients or metrics) opens the component port: %+v", i, rule)
		}
	}
	rule := np.Spec.Ingress[2]
	if !slices.Equal(policyPorts(rule), []string{"xmpp-component"}) || len(rule.From) != 1 ||
		rule.From[0].NamespaceSelector != nil || rule.From[0].PodSelector == nil ||
		rule.From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "irc-gateway" {
		t.Fatalf("components rule (only from components.allowedFrom): %+v", rule)
	}
}

// TestMUCAndComponentsDefaults: without values the group chat service has
// adhocd's defaults and the components are off (no listener, no service,
// no port, no Service, no volume). Enabled without allowedFrom, the
// NetworkPolicy opens the component port to the release's namespace only,
// and the Deployment (postgres) mounts the secrets as the StatefulSet does.
func TestMUCAndComponentsDefaults(t *testing.T) {
	r := decode(t, run(t, "template", "chat", chartDir()))
	cfg := loadConfig(t, r.configMaps["chat-adhocd"])
	if want := config.DefaultMUC(); cfg.MUC != want {
		t.Fatalf("chart's muc defaults differ from adhocd's:\n %+v\nwant\n %+v", cfg.MUC, want)
	}
	if cfg.MUC.ServiceDomain(cfg.Domain) != "conference.localhost" {
		t.Fatalf("muc service domain %q", cfg.MUC.ServiceDomain(cfg.Domain))
	}
	pod := r.statefulSet.Spec.Template.Spec
	if cfg.Components.Listen != "" || len(cfg.Components.Services) != 0 || service(r, "chat-adhocd-components") != nil ||
		containerPort(pod.Containers[0], "xmpp-component") != nil || servicePort(service(r, "chat-adhocd-headless"), "xmpp-component") != nil {
		t.Fatalf("components are on by default: %+v", cfg.Components)
	}
	for _, v := range pod.Volumes {
		if strings.HasPrefix(v.Name, "component-") {
			t.Fatalf("a component volume by default: %+v", v)
		}
	}

	on := []string{"components.enabled=true", "components.services[0].domain=gw.localhost", "components.services[0].existingSecret=gw"}
	r = decode(t, run(t, setArgs(append(on, "networkPolicy.enabled=true"))...))
	cfg = loadConfig(t, r.configMaps["chat-adhocd"])
	if cfg.Components.Listen != ":5347" || len(cfg.Components.Services) != 1 {
		t.Fatalf("components: %+v", cfg.Components)
	}
	np := r.networkPolicy
	if np == nil || len(np.Spec.Ingress) != 3 {
		t.Fatalf("NetworkPolicy: %+v", np)
	}
	rule := np.Spec.Ingress[2]
	// A peer with a podSelector {} and no namespaceSelector: every pod of the policy's namespace.
	if !slices.Equal(policyPorts(rule), []string{"xmpp-component"}) || len(rule.From) != 1 ||
		!isNamespacePeer(rule.From[0]) {
		t.Fatalf("components rule without allowedFrom (want the release's namespace): %+v", rule)
	}

	r = decode(t, run(t, setArgs(pg(on...))...))
	_, tmpl := r.workload(t)
	cfg = loadConfig(t, r.configMaps["chat-adhocd"])
	if secret, key := secretFile(tmpl.Spec, tmpl.Spec.Containers[0], cfg.Components.Services[0].SecretFile); secret != "gw" || key != "secret" {
		t.Fatalf("on the Deployment secret_file %s comes from %q/%q", cfg.Components.Services[0].SecretFile, secret, key)
	}

	// With the group chat service off, its default domain is free for a component, as adhocd allows.
	r = decode(t, run(t, setArgs([]string{"muc.enabled=false", "components.enabled=true",
		"components.services[0].domain=conference.localhost", "components.services[0].existingSecret=c"})...))
	if cfg = loadConfig(t, r.configMaps["chat-adhocd"]); cfg.MUC.Enabled || cfg.Components.Services[0].Domain != "conference.localhost" {
		t.Fatalf("muc %+v, components %+v", cfg.MUC, cfg.Components)
	}
}

// isNamespacePeer reports whether p selects every pod of the policy's own
// namespace, and nothing else.
func isNamespacePeer(p networkingv1.NetworkPolicyPeer) bool {
	return p.IPBlock == nil && p.NamespaceSelector == nil && p.PodSelector != nil &&
		len(p.PodSelector.MatchLabels) == 0 && len(p.PodSelector.MatchExpressions) == 0
}

// TestMUCAndComponentsRefusals: what adhocd would refuse to start with fails
// the render, saying what to change.
func TestMUCAndComponentsRefusals(t *testing.T) {
	on := func(more ...string) []string {
		return append([]string{"components.enabled=true"}, more...)
	}
	gw := []string{"components.services[0].domain=gw.localhost", "components.services[0].existingSecret=gw"}
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{on(), "components.enabled needs at least one entry in components.services"},
		{on("components.services[0].existingSecret=gw"), "components.services[0].domain must be set"},
		{on("components.services[0].domain=gw.localhost"), "components.services[0] (gw.localhost): existingSecret must name an existing Secret"},
		{on("components.services[0].domain=localhost", "components.services[0].existingSecret=gw"), `components.services[0].domain "localhost" is the server's own domain`},
		{on("components.services[0].domain=conference.localhost", "components.services[0].existingSecret=gw"), `components.services[0].domain "conference.localhost" is the group chat service's domain`},
		{on("muc.domain=rooms.localhost", "components.services[0].domain=rooms.localhost", "components.services[0].existingSecret=gw"), `"rooms.localhost" is the group chat service's domain`},
		{on(append(gw, "components.services[1].domain=gw.localhost", "components.services[1].existingSecret=other")...), `components.services[1].domain "gw.localhost" is also components.services[0]`},
		{on(append(gw, "components.port=9090")...), "components.port 9090 is also metrics.port"},
		{on(append(gw, "httpUpload.enabled=true", "httpUpload.port=5347")...), "components.port 5347 is also httpUpload.port"},
		{on(append(gw, "components.services[0].secret=s3cret")...), "additional properties 'secret' not allowed"},
		{on(append(gw, "components.service.type=External")...), "type"},
		{[]string{"muc.domain=localhost"}, `muc.domain "localhost" is the server's own domain`},
		{[]string{"muc.messageBurst=0"}, "muc.messageBurst 0: must be at least 1 when muc.messageRate is set"},
		{[]string{"muc.messageRate=-1"}, "messageRate"},
		{[]string{"muc.maxOccupants=0"}, "maxOccupants"},
		{[]string{"muc.archiveRetention=1y"}, "archiveRetention"},
		{[]string{"muc.maxRoom=5"}, "maxRoom"},
	} {
		_, stderr, err := runHelm(t, setArgs(tc.values)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: err %v, stderr %q; want %q", tc.values, err, stderr, tc.want)
		}
	}
	// What adhocd accepts passes: no burst needed without a rate, no checks of a service that is off.
	for _, values := range [][]string{
		{"muc.messageRate=0", "muc.messageBurst=0"},
		{"muc.enabled=false", "muc.domain=localhost"},
		{"components.services[0].domain=localhost"},
	} {
		r := decode(t, run(t, setArgs(values)...))
		loadConfig(t, r.configMaps["chat-adhocd"])
	}
}
