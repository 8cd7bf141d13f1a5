package helm_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// checkUploadValues checks ci/upload-values.yaml: the upload listener's
// port on the pod, its Service and Ingress, the config.yaml adhocd loads
// (the public URL from the Ingress, the files on a volume of their own at
// /uploads from a volumeClaimTemplate), and the NetworkPolicy letting
// clients reach it.
func checkUploadValues(t *testing.T, r rendered) {
	t.Helper()
	cfg := loadConfig(t, r.configMaps["chat-adhocd"])
	up := cfg.HTTPUpload
	if !up.Enabled || up.Listen != ":5290" || up.TLS || up.PublicURL != "https://files.chat.example.org/" || up.Path != "/uploads" ||
		up.MaxFileBytes != 50<<20 || up.QuotaPerUserBytes != 500<<20 || up.QuotaTotalBytes != 10<<30 ||
		up.ExpireAfter.D() != 72*time.Hour || up.SlotLifetime.D() != 2*time.Minute || up.MaxPendingSlots != 5 ||
		up.ServiceDomain(cfg.Domain) != "upload.chat.example.org" {
		t.Fatalf("rendered http_upload: %+v", up)
	}
	sts := r.statefulSet
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	if p := containerPort(c, "http-upload"); p == nil || p.ContainerPort != 5290 {
		t.Fatalf("container port http-upload: %+v", p)
	}
	// The volume is the claim template's, which the pod does not list.
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/uploads" && m.Name == "uploads" }) ||
		volume(pod, "uploads") != nil {
		t.Fatalf("/uploads: mounts %+v", c.VolumeMounts)
	}
	var claim *corev1.PersistentVolumeClaim
	for i := range sts.Spec.VolumeClaimTemplates {
		if sts.Spec.VolumeClaimTemplates[i].Name == "uploads" {
			claim = &sts.Spec.VolumeClaimTemplates[i]
		}
	}
	if claim == nil || claim.Spec.Resources.Requests.Storage().String() != "20Gi" || *claim.Spec.StorageClassName != "fast" ||
		len(sts.Spec.VolumeClaimTemplates) != 2 {
		t.Fatalf("volumeClaimTemplates: %+v", sts.Spec.VolumeClaimTemplates)
	}
	svc := service(r, "chat-adhocd-upload")
	if svc == nil || svc.Annotations["example.org/upload"] != "true" {
		t.Fatalf("upload Service: %+v", svc)
	}
	if p := servicePort(svc, "http-upload"); p == nil || p.Port != 5290 || p.TargetPort.StrVal != "http-upload" || *p.AppProtocol != "http" {
		t.Fatalf("upload Service port: %+v", p)
	}
	if !matches(svc.Spec.Selector, sts.Spec.Template.Labels) {
		t.Fatalf("the upload Service selects %v, not the pod's labels %v", svc.Spec.Selector, sts.Spec.Template.Labels)
	}
	var ing *networkingv1.Ingress
	for _, i := range r.ingresses {
		if i.Name == "chat-adhocd-upload" {
			ing = i
		}
	}
	if ing == nil || len(r.ingresses) != 2 {
		t.Fatalf("want the upload Ingress beside the WebSocket one: %d", len(r.ingresses))
	}
	rule := ing.Spec.Rules
	if len(rule) != 1 || rule[0].Host != "files.chat.example.org" || len(rule[0].HTTP.Paths) != 1 {
		t.Fatalf("upload Ingress rules: %+v", rule)
	}
	path := rule[0].HTTP.Paths[0]
	if path.Path != "/" || *path.PathType != networkingv1.PathTypePrefix || path.Backend.Service.Name != svc.Name || path.Backend.Service.Port.Name != "http-upload" ||
		*ing.Spec.IngressClassName != "nginx" || ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"] != "50m" || ing.Spec.TLS[0].SecretName != "files-tls" {
		t.Fatalf("upload Ingress: %+v", ing.Spec)
	}
	if np := r.networkPolicy; np == nil || !slices.Contains(policyPorts(np.Spec.Ingress[0]), "http-upload") {
		t.Fatalf("the NetworkPolicy does not let clients reach the upload port: %+v", np)
	}
}

// TestUploadDefaults: off by default, nothing of the service is rendered
// and adhocd's config has it off; enabled on the StatefulSet, the files go
// to the data volume (/data/upload) and the public URL is adhocd's
// default.
func TestUploadDefaults(t *testing.T) {
	r := decode(t, run(t, "template", "chat", chartDir()))
	cfg := loadConfig(t, r.configMaps["chat-adhocd"])
	if cfg.HTTPUpload.Enabled || service(r, "chat-adhocd-upload") != nil || containerPort(r.statefulSet.Spec.Template.Spec.Containers[0], "http-upload") != nil {
		t.Fatalf("the upload service is on by default: %+v", cfg.HTTPUpload)
	}
	r = decode(t, run(t, setArgs([]string{"httpUpload.enabled=true"})...))
	cfg = loadConfig(t, r.configMaps["chat-adhocd"])
	up := cfg.HTTPUpload
	if !up.Enabled || up.PublicURL != "" || up.Dir(cfg.Storage.Path) != "/data/upload" || up.Listen != ":5281" || r.ingress != nil {
		t.Fatalf("http_upload %+v, ingress %v", up, r.ingress != nil)
	}
	if n := len(r.statefulSet.Spec.VolumeClaimTemplates); n != 1 {
		t.Fatalf("%d volumeClaimTemplates, want the data volume's alone", n)
	}
}

// TestUploadRefusals: values that would leave files where not every pod
// serving them sees them, or a port taken twice, fail the render saying
// what to change; on the Deployment an existing claim is mounted.
func TestUploadRefusals(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{pg("httpUpload.enabled=true"), "needs httpUpload.persistence.enabled with an existingClaim"},
		{pg("httpUpload.enabled=true", "httpUpload.persistence.enabled=true"), "needs httpUpload.persistence.enabled with an existingClaim"},
		{[]string{"httpUpload.ingress.enabled=true"}, "httpUpload.ingress.enabled needs httpUpload.enabled"},
		{[]string{"httpUpload.enabled=true", "websocket.enabled=true", "websocket.port=5281"}, "httpUpload.port 5281 is also websocket.port"},
		{[]string{"httpUpload.enabled=true", "httpUpload.port=9090"}, "httpUpload.port 9090 is also metrics.port"},
	} {
		_, stderr, err := runHelm(t, setArgs(tc.values)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: err %v, stderr %q; want %q", tc.values, err, stderr, tc.want)
		}
	}
	r := decode(t, run(t, setArgs(pg("replicaCount=2", "tls.existingSecret=chat-tls", "redis.addr=redis:6379",
		"httpUpload.enabled=true", "httpUpload.persistence.enabled=true", "httpUpload.persistence.existingClaim=shared-uploads"))...))
	_, pod := r.workload(t)
	c := pod.Spec.Containers[0]
	if v := mountedVolume(pod.Spec, c, "/uploads"); v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "shared-uploads" {
		t.Fatalf("/uploads on the Deployment is on %+v", v)
	}
	if cfg := loadConfig(t, r.configMaps["chat-adhocd"]); cfg.HTTPUpload.Dir(cfg.Storage.Path) != "/uploads" {
		t.Fatalf("http_upload.path %q", cfg.HTTPUpload.Path)
	}
}
