package helm_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/adhocd/adhocd/config"
)

// s2sWant is what a render with s2s.enabled must give: the listeners
// adhocd opens and the ports that expose them, where the dialback secret
// comes from, and where the CA bundle comes from.
type s2sWant struct {
	listen    string // config.yaml's s2s.listen
	port      int32  // container and Service port xmpp-server
	directTLS int32  // port xmpps-server; 0: no direct TLS listener
	nodePort  int32  // of xmpp-server on the s2s Service
	dtNode    int32  // of xmpps-server on the s2s Service
	svcType   corev1.ServiceType
	// The Secret and key of the dialback secret; generated: the chart
	// renders that Secret.
	dialbackSecret, dialbackKey string
	generated                   bool
	// The CA bundle: kind "Secret" or "ConfigMap" (empty: none, the
	// system's roots), its name and key.
	caKind, caName, caKey string
}

// s2sObjects stands for what the cluster holds beside the release: the
// data of existing Secrets and ConfigMaps by "Kind/name", which the
// kubelet would project into the pod.
type s2sObjects map[string]map[string][]byte

// checkS2S checks a render with s2s.enabled as the operator of a federated
// server would: adhocd listens where the pod's ports say, a Service of its
// own routes them (and only it, with the headless one), the NetworkPolicy
// (when rendered) lets anyone reach them and leaves egress alone, and
// each file config.yaml names is the key of the Secret or ConfigMap meant
// for it, mounted read-only. It returns the config as adhocd loads it in
// the pod, those files in place, and the dialback secret adhocd reads.
func checkS2S(t *testing.T, r rendered, want s2sWant, objects s2sObjects) (config.Config, []byte) {
	t.Helper()
	name, pod := r.workload(t)
	c := pod.Spec.Containers[0]
	cfg, files := podConfig(t, r, objects)
	s := cfg.S2S
	if !s.Enabled() || s.Listen != want.listen {
		t.Fatalf("s2s.listen %q, want %q", s.Listen, want.listen)
	}
	wantDT := ""
	if want.directTLS != 0 {
		wantDT = fmt.Sprintf(":%d", want.directTLS)
	}
	if s.DirectTLSListen != wantDT {
		t.Fatalf("s2s.direct_tls_listen %q, want %q", s.DirectTLSListen, wantDT)
	}
	if _, port, err := net.SplitHostPort(s.Listen); err != nil || port != fmt.Sprint(want.port) {
		t.Fatalf("s2s.listen %q is not on port %d: %v", s.Listen, want.port, err)
	}

	// The pod's ports, and the Services that route them.
	ports := map[string]int32{"xmpp-server": want.port}
	if want.directTLS != 0 {
		ports["xmpps-server"] = want.directTLS
	} else if p := containerPort(c, "xmpps-server"); p != nil {
		t.Fatalf("a direct TLS port without s2s.directTLS: %+v", p)
	}
	svc := service(r, name+"-s2s")
	if svc == nil {
		t.Fatalf("no Service %s-s2s", name)
	}
	if svc.Spec.Type != want.svcType || svc.Labels["app.kubernetes.io/component"] != "s2s" || !matches(svc.Spec.Selector, pod.Labels) {
		t.Fatalf("s2s Service type %s (want %s), labels %v, selector %v (pod labels %v)",
			svc.Spec.Type, want.svcType, svc.Labels, svc.Spec.Selector, pod.Labels)
	}
	if len(svc.Spec.Ports) != len(ports) {
		t.Fatalf("s2s Service ports %+v, want %v", svc.Spec.Ports, ports)
	}
	nodePorts := map[string]int32{"xmpp-server": want.nodePort, "xmpps-server": want.dtNode}
	for pname, port := range ports {
		cp := containerPort(c, pname)
		if cp == nil || cp.ContainerPort != port || cp.Protocol != corev1.ProtocolTCP {
			t.Fatalf("container port %s %+v, want %d/TCP", pname, cp, port)
		}
		sp := servicePort(svc, pname)
		if sp == nil || sp.Port != port || sp.TargetPort.StrVal != cp.Name || sp.Protocol != corev1.ProtocolTCP || sp.NodePort != nodePorts[pname] {
			t.Fatalf("s2s Service port %s %+v, want %d to the container's %s, node port %d", pname, sp, port, cp.Name, nodePorts[pname])
		}
		if hp := servicePort(service(r, name+"-headless"), pname); hp == nil || hp.Port != port || hp.TargetPort.StrVal != cp.Name {
			t.Fatalf("headless Service port %s: %+v", pname, hp)
		}
		// Federation has a Service of its own: the c2s one (perhaps a
		// LoadBalancer with loadBalancerSourceRanges for clients) does
		// not carry it.
		for _, other := range r.services {
			if other != svc && other.Name != name+"-headless" && servicePort(other, pname) != nil {
				t.Fatalf("Service %s carries the federation port %s", other.Name, pname)
			}
		}
	}
	// The test pod still finds the c2s Service first.
	if r.services[0].Name != name || servicePort(r.services[0], "xmpp-client") == nil {
		t.Fatalf("the first Service is %s, not the c2s Service %s", r.services[0].Name, name)
	}

	if np := r.networkPolicy; np != nil {
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
			t.Fatalf("NetworkPolicy policyTypes %v: outbound federation needs DNS and any remote port, so egress must be left alone", np.Spec.PolicyTypes)
		}
		var open []string
		for _, rule := range np.Spec.Ingress {
			pp := policyPorts(rule)
			if !slices.ContainsFunc(pp, func(p string) bool { _, ok := ports[p]; return ok }) {
				continue
			}
			if len(rule.From) != 0 {
				t.Fatalf("the federation rule %+v admits only some peers: remote servers connect from anywhere", rule)
			}
			for _, p := range rule.Ports {
				if p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
					t.Fatalf("federation rule port %+v is not TCP", p)
				}
			}
			open = append(open, pp...)
		}
		slices.Sort(open)
		if wantOpen := slices.Sorted(maps.Keys(ports)); !slices.Equal(open, wantOpen) {
			t.Fatalf("the NetworkPolicy opens %v to remote servers, want %v", open, wantOpen)
		}
	}

	// The dialback secret: one Secret's key, mounted read-only as a folder
	// (a subPath mount would never see the Secret change).
	dialbackFile := files[s.DialbackSecretFile]
	if secret, key := secretFile(pod.Spec, c, dialbackFile); secret != want.dialbackSecret || key != want.dialbackKey {
		t.Fatalf("s2s.dialback_secret_file %q is key %q of Secret %q, want %s of %s", dialbackFile, key, secret, want.dialbackKey, want.dialbackSecret)
	}
	checkReadOnlyFolder(t, pod.Spec, c, dialbackFile)
	var generated *corev1.Secret
	for _, sec := range r.secrets {
		if sec.Name == want.dialbackSecret {
			generated = sec
		}
	}
	if (generated != nil) != want.generated {
		t.Fatalf("the chart renders Secret %s: %v, want %v", want.dialbackSecret, generated != nil, want.generated)
	}
	if generated != nil {
		if generated.Labels["app.kubernetes.io/component"] != "s2s" || len(generated.Data) != 1 {
			t.Fatalf("dialback Secret %s: labels %v, keys %d", generated.Name, generated.Labels, len(generated.Data))
		}
		if v := generated.Data[want.dialbackKey]; !regexp.MustCompile(`^[a-zA-Z0-9]{48}$`).Match(v) {
			t.Fatalf("generated dialback secret %q: want 48 random letters and digits", v)
		}
	}
	secret, err := s.DialbackSecret()
	if err != nil {
		t.Fatalf("adhocd cannot read the dialback secret in the pod: %v", err)
	}

	// The CA bundle.
	if want.caKind == "" {
		if s.CAFile != "" {
			t.Fatalf("s2s.ca_file %q, want empty (the system's roots)", s.CAFile)
		}
		if v := volume(pod.Spec, "s2s-ca"); v != nil {
			t.Fatalf("a CA volume without s2s.caSecret or caConfigMap: %+v", v)
		}
	} else {
		kind, obj, key := projected(pod.Spec, c, files[s.CAFile])
		if kind != want.caKind || obj != want.caName || key != want.caKey {
			t.Fatalf("s2s.ca_file %s is key %q of %s %q, want %s of %s %s", files[s.CAFile], key, kind, obj, want.caKey, want.caKind, want.caName)
		}
		checkReadOnlyFolder(t, pod.Spec, c, files[s.CAFile])
	}
	return cfg, secret
}

// checkReadOnlyFolder checks that the file at path is in a read-only mount
// of a whole folder.
func checkReadOnlyFolder(t *testing.T, pod corev1.PodSpec, c corev1.Container, path string) {
	t.Helper()
	v := mountedVolume(pod, c, path)
	if v == nil {
		t.Fatalf("%s is on no volume", path)
	}
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == v.Name })
	if m := c.VolumeMounts[i]; !m.ReadOnly || m.SubPath != "" || m.MountPath != filepath.Dir(path) {
		t.Fatalf("the mount of %s is not a read-only folder: %+v", path, m)
	}
}

// projected returns the kind ("Secret" or "ConfigMap"), name and key the
// file at path in c comes from, or empty strings.
func projected(pod corev1.PodSpec, c corev1.Container, path string) (kind, name, key string) {
	v, rel := mountOf(pod, c, path)
	if v == nil || rel == "" {
		return "", "", ""
	}
	var items []corev1.KeyToPath
	switch {
	case v.Secret != nil:
		kind, name, items = "Secret", v.Secret.SecretName, v.Secret.Items
	case v.ConfigMap != nil:
		kind, name, items = "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items
	default:
		return "", "", ""
	}
	if len(items) == 0 {
		return kind, name, rel
	}
	for _, it := range items {
		if it.Path == rel {
			return kind, name, it.Key
		}
	}
	return kind, name, ""
}

// podConfig loads the rendered config.yaml with adhocd's loader as the
// pod would: each file of s2s.* it names (the CA bundle, which adhocd
// reads at load, and the dialback secret, read at start) is first
// projected, as the kubelet does, from the key of the Secret or ConfigMap
// its volume names (objects, or the Secrets the chart renders) into a
// folder standing for the pod's root, and config.yaml is loaded with its
// paths there. files maps each such path back to the pod's.
func podConfig(t *testing.T, r rendered, objects s2sObjects) (config.Config, map[string]string) {
	t.Helper()
	name, pod := r.workload(t)
	c := pod.Spec.Containers[0]
	cm := r.configMaps[name]
	if cm == nil {
		t.Fatalf("no ConfigMap %s", name)
	}
	var raw struct {
		S2S struct {
			CAFile             string `json:"ca_file"`
			DialbackSecretFile string `json:"dialback_secret_file"`
		} `json:"s2s"`
	}
	text := cm.Data["config.yaml"]
	if err := yaml.Unmarshal([]byte(text), &raw); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	all := s2sObjects{}
	maps.Copy(all, objects)
	for _, s := range r.secrets {
		all["Secret/"+s.Name] = s.Data
	}
	root := t.TempDir()
	files := map[string]string{}
	for _, path := range []string{raw.S2S.CAFile, raw.S2S.DialbackSecretFile} {
		if path == "" {
			continue
		}
		if !filepath.IsAbs(path) {
			t.Fatalf("%q: a file of the config is not absolute: the pod's working folder is the image's", path)
		}
		kind, obj, key := projected(pod.Spec, c, path)
		data, ok := all[kind+"/"+obj][key]
		if kind == "" || !ok {
			t.Fatalf("config.yaml names %s, which is no key of a mounted Secret or ConfigMap the cluster holds (%s %q key %q)", path, kind, obj, key)
		}
		local := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, data, 0o400); err != nil {
			t.Fatal(err)
		}
		// The key is quoted in the rendered YAML: replace the quoted path
		// only, so that no other value is touched.
		quoted := fmt.Sprintf("%q", path)
		if strings.Count(text, quoted) != 1 {
			t.Fatalf("%s is named %d times in config.yaml", path, strings.Count(text, quoted))
		}
		text = strings.Replace(text, quoted, fmt.Sprintf("%q", local), 1)
		files[local] = path
	}
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("adhocd refuses the rendered config.yaml with its files in place: %v\n%s", err, text)
	}
	return cfg, files
}

// testCA returns a PEM certificate of a CA, as a private CA's bundle.
func testCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Federation test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestS2SOff: without s2s.enabled nothing of federation is rendered, not
// even with the NetworkPolicy or with every other s2s value set: no
// listener in config.yaml (adhocd's default would open :5269), no port on
// the pod or any Service, no s2s Service, rule, volume or Secret.
func TestS2SOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", setArgs(nil)},
		{"other values set", setArgs([]string{"networkPolicy.enabled=true", "s2s.directTLS.enabled=true", "s2s.port=5300",
			"s2s.caSecret=federation-ca", "s2s.dialbackSecret.existingSecret=chat-dialback", "s2s.service.type=LoadBalancer"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decode(t, run(t, tc.args...))
			name, pod := r.workload(t)
			cfg := loadConfig(t, r.configMaps[name])
			s := cfg.S2S
			if s.Enabled() || s.Listen != "" || s.DirectTLSListen != "" || s.CAFile != "" || s.DialbackSecretFile != "" {
				t.Fatalf("federation is not off: %+v", s)
			}
			c := pod.Spec.Containers[0]
			for _, p := range []string{"xmpp-server", "xmpps-server"} {
				if cp := containerPort(c, p); cp != nil {
					t.Fatalf("the pod exposes %s: %+v", p, cp)
				}
				for _, svc := range r.services {
					if sp := servicePort(svc, p); sp != nil {
						t.Fatalf("Service %s has %s: %+v", svc.Name, p, sp)
					}
				}
				if np := r.networkPolicy; np != nil {
					for _, rule := range np.Spec.Ingress {
						if slices.Contains(policyPorts(rule), p) {
							t.Fatalf("the NetworkPolicy opens %s: %+v", p, rule)
						}
					}
				}
			}
			if svc := service(r, name+"-s2s"); svc != nil {
				t.Fatalf("an s2s Service without s2s.enabled: %+v", svc.Spec)
			}
			for _, v := range []string{"s2s-dialback", "s2s-ca"} {
				if volume(pod.Spec, v) != nil {
					t.Fatalf("volume %s without s2s.enabled", v)
				}
			}
			for _, sec := range r.secrets {
				if strings.Contains(sec.Name, "s2s") {
					t.Fatalf("Secret %s without s2s.enabled", sec.Name)
				}
			}
		})
	}
}

// TestS2SEnabled turns federation on over the defaults and over the
// chart's other shapes, and checks each render with checkS2S.
func TestS2SEnabled(t *testing.T) {
	ca := testCA(t)
	on := func(more ...string) []string { return setArgs(append([]string{"s2s.enabled=true"}, more...)) }
	def := s2sWant{listen: ":5269", port: 5269, svcType: corev1.ServiceTypeClusterIP,
		dialbackSecret: "chat-adhocd-s2s-dialback", dialbackKey: "secret", generated: true}
	with := func(f func(w *s2sWant)) s2sWant { w := def; f(&w); return w }
	for _, tc := range []struct {
		name    string
		args    []string
		want    s2sWant
		objects s2sObjects
	}{
		{"defaults", on(), def, nil},
		{"network policy", on("networkPolicy.enabled=true"), def, nil},
		{"network policy with client peers", on("networkPolicy.enabled=true", "networkPolicy.clientFrom[0].ipBlock.cidr=10.0.0.0/8"), def, nil},
		{"another port", on("s2s.port=5300"), with(func(w *s2sWant) { w.listen, w.port = ":5300", 5300 }), nil},
		{"direct TLS", on("s2s.directTLS.enabled=true", "networkPolicy.enabled=true"),
			with(func(w *s2sWant) { w.directTLS = 5270 }), nil},
		{"direct TLS, load balancer, node ports", on("s2s.directTLS.enabled=true", "s2s.directTLS.port=5271", "s2s.directTLS.nodePort=30270",
			"s2s.service.type=LoadBalancer", "s2s.service.nodePort=30269", "s2s.service.externalTrafficPolicy=Local", "networkPolicy.enabled=true"),
			with(func(w *s2sWant) {
				w.directTLS, w.dtNode, w.nodePort, w.svcType = 5271, 30270, 30269, corev1.ServiceTypeLoadBalancer
			}), nil},
		{"node port", on("s2s.service.type=NodePort"), with(func(w *s2sWant) { w.svcType = corev1.ServiceTypeNodePort }), nil},
		{"existing dialback Secret", on("s2s.dialbackSecret.existingSecret=chat-dialback", "s2s.dialbackSecret.key=dialback"),
			with(func(w *s2sWant) { w.dialbackSecret, w.dialbackKey, w.generated = "chat-dialback", "dialback", false }),
			s2sObjects{"Secret/chat-dialback": {"dialback": []byte("shared by every replica\n")}}},
		{"existing dialback Secret, default key", on("s2s.dialbackSecret.existingSecret=chat-dialback"),
			with(func(w *s2sWant) { w.dialbackSecret, w.generated = "chat-dialback", false }),
			s2sObjects{"Secret/chat-dialback": {"secret": []byte("s3cret")}}},
		{"CA Secret", on("s2s.caSecret=federation-ca", "s2s.requireValidCertificates=true"),
			with(func(w *s2sWant) { w.caKind, w.caName, w.caKey = "Secret", "federation-ca", "ca.crt" }),
			s2sObjects{"Secret/federation-ca": {"ca.crt": ca}}},
		{"CA ConfigMap", on("s2s.caConfigMap=federation-bundle", "s2s.caKey=bundle.pem"),
			with(func(w *s2sWant) { w.caKind, w.caName, w.caKey = "ConfigMap", "federation-bundle", "bundle.pem" }),
			s2sObjects{"ConfigMap/federation-bundle": {"bundle.pem": ca}}},
		// s2s.listen of earlier versions of the chart: as it is in
		// config.yaml, its port on the pod and the Service.
		{"deprecated listen", on("s2s.listen=0.0.0.0:5280"), with(func(w *s2sWant) { w.listen, w.port = "0.0.0.0:5280", 5280 }), nil},
		{"deprecated listen, IPv6", on("s2s.listen=[::]:5269"), with(func(w *s2sWant) { w.listen = "[::]:5269" }), nil},
		{"the Deployment", on(pg()...), def, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lint := append([]string{"lint", "--strict", chartDir()}, tc.args[3:]...)
			run(t, lint...)
			r := decode(t, run(t, tc.args...))
			cfg, secret := checkS2S(t, r, tc.want, tc.objects)
			var wantSecret []byte
			if tc.want.generated {
				wantSecret = r.secrets[slices.IndexFunc(r.secrets, func(s *corev1.Secret) bool { return s.Name == tc.want.dialbackSecret })].Data["secret"]
			} else {
				wantSecret = []byte(strings.TrimSpace(string(tc.objects["Secret/"+tc.want.dialbackSecret][tc.want.dialbackKey])))
			}
			if string(secret) != string(wantSecret) {
				t.Fatalf("adhocd reads the dialback secret %q, want %q", secret, wantSecret)
			}
			rvc := strings.Contains(strings.Join(tc.args, " "), "s2s.requireValidCertificates=true")
			if cfg.S2S.RequireValidCertificates != rvc || !cfg.S2S.RequireTLS {
				t.Fatalf("s2s.require_valid_certificates %v (want %v), require_tls %v", cfg.S2S.RequireValidCertificates, rvc, cfg.S2S.RequireTLS)
			}
			// The rest is adhocd's defaults.
			def := config.DefaultS2S()
			if cfg.S2S.Limits != def.Limits || cfg.S2S.Hosts != nil || cfg.S2S.ConnectTimeout != def.ConnectTimeout {
				t.Fatalf("s2s %+v, want adhocd's defaults beside the chart's values", cfg.S2S)
			}
		})
	}
}

// TestS2SGeneratedSecretIsRandom: the dialback Secret the chart renders is
// drawn at each install, not a value of the chart.
func TestS2SGeneratedSecretIsRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		r := decode(t, run(t, setArgs([]string{"s2s.enabled=true"})...))
		for _, s := range r.secrets {
			if s.Name == "chat-adhocd-s2s-dialback" {
				seen[string(s.Data["secret"])] = true
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("three installs drew %d different dialback secrets", len(seen))
	}
}

// TestS2SCluster: with three replicas (ci/cluster-values.yaml) every pod
// of the Deployment mounts the same dialback secret, generated once or
// taken from an existing Secret, and the cluster's config loads.
func TestS2SCluster(t *testing.T) {
	file := filepath.Join(chartDir(), "ci", "cluster-values.yaml")
	for _, tc := range []struct {
		name    string
		set     string
		want    s2sWant
		objects s2sObjects
	}{
		{"generated", "s2s.enabled=true,s2s.service.type=LoadBalancer",
			s2sWant{listen: ":5269", port: 5269, svcType: corev1.ServiceTypeLoadBalancer,
				dialbackSecret: "chat-adhocd-s2s-dialback", dialbackKey: "secret", generated: true}, nil},
		{"existing", "s2s.enabled=true,s2s.dialbackSecret.existingSecret=chat-dialback",
			s2sWant{listen: ":5269", port: 5269, svcType: corev1.ServiceTypeClusterIP,
				dialbackSecret: "chat-dialback", dialbackKey: "secret"},
			s2sObjects{"Secret/chat-dialback": {"secret": []byte("one secret for all")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decode(t, run(t, "template", "chat", chartDir(), "-f", file, "--set", tc.set))
			if r.deployment == nil || *r.deployment.Spec.Replicas != 3 {
				t.Fatalf("want the Deployment of three replicas: %+v", r.deployment)
			}
			cfg, secret := checkS2S(t, r, tc.want, tc.objects)
			if !cfg.Cluster.Enabled() || len(secret) == 0 {
				t.Fatalf("cluster %v, dialback secret %q", cfg.Cluster.Enabled(), secret)
			}
			var dialback []string
			for _, s := range r.secrets {
				if strings.Contains(s.Name, "dialback") {
					dialback = append(dialback, s.Name)
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tc.want.generated]; len(dialback) != want {
				t.Fatalf("dialback Secrets rendered: %q, want %d", dialback, want)
			}
		})
	}
}

// TestS2SHosts: s2s.hosts reaches config.yaml, its domains as adhocd takes
// them (canonical), and a domain served here or listed twice fails the
// render as adhocd would fail to start.
func TestS2SHosts(t *testing.T) {
	values := filepath.Join(t.TempDir(), "hosts.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(values, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`domain: chat.example.org
s2s:
  enabled: true
  hosts:
    B.example.org: xmpp.b.example.org:5269
    c.example: tls://192.0.2.5:5270
    d.example: "[2001:db8::5]:5269"
`)
	r := decode(t, run(t, "template", "chat", chartDir(), "-f", values))
	cfg, _ := checkS2S(t, r, s2sWant{listen: ":5269", port: 5269, svcType: corev1.ServiceTypeClusterIP,
		dialbackSecret: "chat-adhocd-s2s-dialback", dialbackKey: "secret", generated: true}, nil)
	want := map[string]string{"b.example.org": "xmpp.b.example.org:5269", "c.example": "tls://192.0.2.5:5270", "d.example": "[2001:db8::5]:5269"}
	if len(cfg.S2S.Hosts) != len(want) {
		t.Fatalf("s2s.hosts %v, want %v", cfg.S2S.Hosts, want)
	}
	for d, addr := range want {
		if cfg.S2S.Hosts[d] != addr {
			t.Fatalf("s2s.hosts %v, want %v", cfg.S2S.Hosts, want)
		}
	}

	for _, tc := range []struct{ hosts, want string }{
		{"chat.example.org: a:5269", `s2s.hosts: "chat.example.org" is the server's own domain`},
		{"Chat.Example.org.: a:5269", `s2s.hosts: "Chat.Example.org." is the server's own domain`},
		{"conference.chat.example.org: a:5269", "is the group chat service's domain (muc.domain)"},
		{"b.example: a:5269\n    B.example.: a:5269", "are the same domain b.example"},
		{"b.example: a", "/s2s/hosts/b.example"},
		{"b.example: http://a:5269", "/s2s/hosts/b.example"},
		{"b.example: a:0", "/s2s/hosts/b.example"},
		{"b.example: a:65536", "/s2s/hosts/b.example"},
		{"b@example: a:5269", "invalid propertyName 'b@example'"},
	} {
		write("domain: chat.example.org\ns2s:\n  enabled: true\n  hosts:\n    " + tc.hosts + "\n")
		out, errOut, err := runHelm(t, "template", "chat", chartDir(), "-f", values)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("hosts {%s}: want a refusal saying %q, got %v\n%s%s", tc.hosts, tc.want, err, errOut, out)
		}
	}
	// A service domain refused only while the service runs here.
	write("domain: chat.example.org\nmuc:\n  enabled: false\ns2s:\n  enabled: true\n  hosts:\n    conference.chat.example.org: a:5269\n")
	r = decode(t, run(t, "template", "chat", chartDir(), "-f", values))
	if cfg := loadConfig(t, r.configMaps["chat-adhocd"]); cfg.S2S.Hosts["conference.chat.example.org"] != "a:5269" {
		t.Fatalf("s2s.hosts %v", cfg.S2S.Hosts)
	}
}

// TestS2SRefusals: unknown and invalid s2s values, and those adhocd would
// refuse to start with or Kubernetes would not apply, stop helm with what
// to change.
func TestS2SRefusals(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"s2s.enable=true", "enable"},
		{"s2s.dialbackSecret.name=x", "name"},
		{"s2s.directTLS.listen=:5270", "listen"},
		{"s2s.service.loadBalancerIP=1.2.3.4", "loadBalancerIP"},
		{"s2s.port=0", "/s2s/port"},
		{"s2s.port=70000", "/s2s/port"},
		{"s2s.listen=5269", "/s2s/listen"},
		{"s2s.listen=:70000", "/s2s/listen"},
		{"s2s.dialbackSecret.key=", "/s2s/dialbackSecret/key"},
		{"s2s.caKey=", "/s2s/caKey"},
		{"s2s.service.type=ExternalName", "/s2s/service/type"},
		{"s2s.enabled=true,s2s.port=5222", "the s2s port 5222 (s2s.port, or s2s.listen) is also c2s.port"},
		{"s2s.enabled=true,s2s.listen=:9090", "the s2s port 9090 (s2s.port, or s2s.listen) is also metrics.port"},
		{"s2s.enabled=true,c2s.directTLS.enabled=true,c2s.directTLS.port=5269", "is also c2s.directTLS.port"},
		{"s2s.enabled=true,websocket.enabled=true,websocket.port=5269", "is also websocket.port"},
		{"s2s.enabled=true,s2s.directTLS.enabled=true,s2s.directTLS.port=5269", "s2s.directTLS.port 5269 is also the s2s port"},
		{"s2s.enabled=true,s2s.directTLS.enabled=true,c2s.directTLS.enabled=true,c2s.directTLS.port=5270", "s2s.directTLS.port 5270 is also c2s.directTLS.port"},
		{"s2s.enabled=true,s2s.directTLS.enabled=true,httpUpload.enabled=true,httpUpload.port=5270", "s2s.directTLS.port 5270 is also httpUpload.port"},
		{"s2s.enabled=true,s2s.service.nodePort=30269", "s2s.service.nodePort needs s2s.service.type NodePort or LoadBalancer"},
		{"s2s.enabled=true,s2s.service.externalTrafficPolicy=Local", "s2s.service.externalTrafficPolicy needs s2s.service.type NodePort or LoadBalancer"},
		{"s2s.enabled=true,s2s.directTLS.enabled=true,s2s.directTLS.nodePort=30270", "s2s.directTLS.nodePort needs s2s.service.type NodePort or LoadBalancer"},
		{"s2s.enabled=true,s2s.service.type=NodePort,s2s.service.nodePort=30269,s2s.directTLS.enabled=true,s2s.directTLS.nodePort=30269",
			"s2s.directTLS.nodePort 30269 is also s2s.service.nodePort"},
		{"s2s.caSecret=a,s2s.caConfigMap=b", `s2s.caSecret "a" and s2s.caConfigMap "b" are both set`},
	} {
		out, errOut, err := runHelm(t, "template", "chat", chartDir(), "--set", tc.set)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("--set %s: want a refusal saying %q, got %v\n%s%s", tc.set, tc.want, err, errOut, out)
		}
	}
}

// TestS2SNotes renders NOTES.txt, which helm template leaves out, through
// a copy of the chart that turns it into a ConfigMap, and checks that it
// names the SRV records to publish for the s2s Service's port, and says
// what the ClusterIP default and a self-signed certificate mean.
func TestS2SNotes(t *testing.T) {
	chart := filepath.Join(t.TempDir(), "adhocd")
	if err := os.CopyFS(chart, os.DirFS(chartDir())); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(chartDir(), "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// Beside the templates: .Files cannot read templates/.
	if err := os.WriteFile(filepath.Join(chart, "notes.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(chart, "templates", "rendered-notes.yaml"), []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: rendered-notes
data:
  NOTES.txt: {{ tpl (.Files.Get "notes.txt") . | quote }}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	render := func(t *testing.T, set string) string {
		t.Helper()
		args := []string{"template", "chat", chart, "--namespace", "xmpp", "--show-only", "templates/rendered-notes.yaml"}
		if set != "" {
			args = append(args, "--set", set)
		}
		cm := decode(t, run(t, args...)).configMaps["rendered-notes"]
		if cm == nil {
			t.Fatal("NOTES.txt not rendered")
		}
		return cm.Data["NOTES.txt"]
	}
	for _, tc := range []struct {
		name, set string
		want, not []string
	}{
		{"off", "", nil, []string{"_xmpp-server", "Federation"}},
		{"on", "s2s.enabled=true,domain=chat.example.org", []string{
			"the Service chat-adhocd-s2s (ClusterIP),\nport 5269.",
			"  _xmpp-server._tcp.chat.example.org. SRV 0 5 5269 <host>.\n",
			"the group chat service's domain, conference.chat.example.org",
			"The Service is a ClusterIP: only the cluster reaches it.",
			"Without tls.existingSecret the server has a self-signed certificate",
		}, []string{"_xmpps-server"}},
		{"load balancer, direct TLS, certificate", "s2s.enabled=true,domain=chat.example.org,s2s.service.type=LoadBalancer,s2s.port=5300," +
			"s2s.directTLS.enabled=true,s2s.directTLS.port=5301,tls.existingSecret=chat-tls,muc.enabled=false", []string{
			"  _xmpp-server._tcp.chat.example.org. SRV 0 5 5300 <host>.\n",
			"  _xmpps-server._tcp.chat.example.org. SRV 0 5 5301 <host>.\n",
			"kubectl --namespace xmpp get svc chat-adhocd-s2s -o jsonpath='{.status.loadBalancer.ingress[0]}'",
		}, []string{"ClusterIP", "self-signed certificate,", "group chat"}},
		{"node ports", "s2s.enabled=true,s2s.service.type=NodePort,s2s.service.nodePort=30269,s2s.directTLS.enabled=true", []string{
			"  _xmpp-server._tcp.localhost. SRV 0 5 30269 <host>.\n",
			"  _xmpps-server._tcp.localhost. SRV 0 5 <node port> <host>.\n",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := render(t, tc.set)
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("NOTES.txt lacks %q:\n%s", w, text)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(text, n) {
					t.Errorf("NOTES.txt says %q:\n%s", n, text)
				}
			}
		})
	}
}

// TestS2SDialbackSecretKeptOnUpgrade renders the chart against a stand-in
// for the Kubernetes API on loopback (helm template --validate
// --dry-run=server, which lets the chart's lookup ask it), as helm upgrade
// renders it: the dialback Secret already in the cluster keeps its value,
// so that the replicas of the old and the new pods agree; an install into
// an empty namespace draws a new one.
func TestS2SDialbackSecretKeptOnUpgrade(t *testing.T) {
	api := newFakeAPI(t)
	kept := "kept-across-upgrades-0123456789abcdefghijklmnopq"
	api.put("xmpp", "chat-adhocd-s2s-dialback", map[string][]byte{"secret": []byte(kept)})
	render := func(t *testing.T) string {
		t.Helper()
		r := decode(t, run(t, "template", "chat", chartDir(), "--namespace", "xmpp", "--set", "s2s.enabled=true",
			"--validate", "--dry-run=server", "--is-upgrade", "--disable-openapi-validation", "--kubeconfig", api.kubeconfig))
		for _, s := range r.secrets {
			if s.Name == "chat-adhocd-s2s-dialback" {
				return string(s.Data["secret"])
			}
		}
		t.Fatal("no dialback Secret rendered")
		return ""
	}
	if got := render(t); got != kept {
		t.Fatalf("upgrade rendered the dialback secret %q, want the one in the cluster %q", got, kept)
	}
	if !api.asked("/api/v1/namespaces/xmpp/secrets/chat-adhocd-s2s-dialback") {
		t.Fatal("the chart did not look the Secret up")
	}
	api.put("xmpp", "chat-adhocd-s2s-dialback", nil)
	if got := render(t); got == kept || !regexp.MustCompile(`^[a-zA-Z0-9]{48}$`).MatchString(got) {
		t.Fatalf("install into an empty namespace rendered %q, want a new random secret", got)
	}
}

// fakeAPI is the part of the Kubernetes API helm needs to render with
// --validate: the version, discovery of the kinds the chart renders, and
// GET of a Secret (lookup); everything else is not found.
type fakeAPI struct {
	kubeconfig string
	mu         sync.Mutex
	secrets    map[string]map[string][]byte // namespace/name
	paths      []string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	a := &fakeAPI{secrets: map[string]map[string][]byte{}}
	resources := func(group string, list ...[3]string) map[string]any {
		var rs []map[string]any
		for _, r := range list {
			rs = append(rs, map[string]any{"name": r[0], "singularName": r[1], "kind": r[2], "namespaced": true,
				"verbs": []string{"create", "delete", "get", "list", "patch", "update", "watch"}})
		}
		return map[string]any{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group, "resources": rs}
	}
	group := func(name string) map[string]any {
		v := map[string]any{"groupVersion": name + "/v1", "version": "v1"}
		return map[string]any{"name": name, "versions": []any{v}, "preferredVersion": v}
	}
	static := map[string]any{
		"/version": map[string]any{"major": "1", "minor": "30", "gitVersion": "v1.30.0"},
		"/api":     map[string]any{"kind": "APIVersions", "versions": []string{"v1"}},
		"/apis": map[string]any{"kind": "APIGroupList", "apiVersion": "v1",
			"groups": []any{group("apps"), group("policy"), group("networking.k8s.io")}},
		"/api/v1": resources("v1", [3]string{"configmaps", "configmap", "ConfigMap"}, [3]string{"secrets", "secret", "Secret"},
			[3]string{"services", "service", "Service"}, [3]string{"serviceaccounts", "serviceaccount", "ServiceAccount"},
			[3]string{"pods", "pod", "Pod"}, [3]string{"persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim"}),
		"/apis/apps/v1": resources("apps/v1", [3]string{"statefulsets", "statefulset", "StatefulSet"},
			[3]string{"deployments", "deployment", "Deployment"}),
		"/apis/policy/v1": resources("policy/v1", [3]string{"poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget"}),
		"/apis/networking.k8s.io/v1": resources("networking.k8s.io/v1", [3]string{"networkpolicies", "networkpolicy", "NetworkPolicy"},
			[3]string{"ingresses", "ingress", "Ingress"}),
	}
	secretPath := regexp.MustCompile(`^/api/v1/namespaces/([^/]+)/secrets/([^/]+)$`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		a.mu.Lock()
		a.paths = append(a.paths, req.URL.Path)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		reply := func(code int, v any) {
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(v)
		}
		if v, ok := static[req.URL.Path]; ok && req.Method == http.MethodGet {
			reply(http.StatusOK, v)
			return
		}
		if m := secretPath.FindStringSubmatch(req.URL.Path); m != nil && req.Method == http.MethodGet {
			a.mu.Lock()
			data, ok := a.secrets[m[1]+"/"+m[2]]
			a.mu.Unlock()
			if ok {
				reply(http.StatusOK, map[string]any{"kind": "Secret", "apiVersion": "v1", "type": "Opaque", "data": data,
					"metadata": map[string]any{"namespace": m[1], "name": m[2]}})
				return
			}
		}
		reply(http.StatusNotFound, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure",
			"reason": "NotFound", "code": http.StatusNotFound, "message": req.URL.Path + " not found"})
	}))
	t.Cleanup(srv.Close)
	a.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: %s
contexts:
  - name: fake
    context:
      cluster: fake
      user: fake
current-context: fake
users:
  - name: fake
    user: {}
`, srv.URL)
	if err := os.WriteFile(a.kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

// put stores a Secret's data; nil removes it.
func (a *fakeAPI) put(namespace, name string, data map[string][]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if data == nil {
		delete(a.secrets, namespace+"/"+name)
		return
	}
	a.secrets[namespace+"/"+name] = data
}

// asked reports whether helm requested path.
func (a *fakeAPI) asked(path string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Contains(a.paths, path)
}
