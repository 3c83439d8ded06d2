package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const (
	chartDir   = "../maxine"
	release    = "demo"
	namespace  = "apps"
	healthPath = "/api/actuator/health"
	// binPath is where the image keeps the binary (the Dockerfile's
	// ENTRYPOINT, checked by TestDockerfileEntrypoint).
	binPath = "/usr/local/bin/maxine"
)

// valueSets are the configurations every render test covers.
var valueSets = map[string]string{
	"defaults": ``,
	"redis-sentinel": `
mode: redis
replicaCount: 3
redis:
  url: redis://:hunter2@ignored:6379/2
  sentinel:
    master: mymaster
    addrs: [sentinel-0.sentinel:26379, sentinel-1.sentinel:26379, sentinel-2.sentinel:26379]
    password: sentinel-pass
auth:
  operator: {username: ops}
`,
	"existing-secret": `
auth:
  existingSecret: maxine-credentials
  viewer: {username: grafana}
`,
	"redis-existing-secret": `
mode: redis
replicaCount: 2
auth:
  existingSecret: maxine-credentials
probes:
  redisOutage: unready
`,
	"service-monitor": `
serviceMonitor:
  enabled: true
  labels: {release: prometheus}
networkPolicy:
  enabled: true
  adminFrom:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: monitoring}
config:
  MAXINE_LOG_LEVEL: debug
  MAXINE_MAX_RETRIES: 3
  MAXINE_HEALTH_CHECKS: false
`,
	"tls": `
tls: {secretName: maxine-tls, gateway: true, admin: true}
networkPolicy: {enabled: true}
`,
	"tls-gateway-only": `
tls: {secretName: maxine-tls, gateway: true}
`,
}

func loadChart(t testing.TB) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return c
}

func parseValues(t testing.TB, s string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(s))
	if err != nil {
		t.Fatalf("values: %v\n%s", err, s)
	}
	return v.AsMap()
}

// render renders the chart as `helm install` would (schema checked first).
func render(c *chart.Chart, vals map[string]any, cp engine.ClientProvider) (map[string]string, error) {
	rv, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}, nil)
	if err != nil {
		return nil, err
	}
	if cp != nil {
		return engine.RenderWithClientProvider(c, rv, cp)
	}
	return engine.Render(c, rv)
}

// objects is one render decoded into the Kubernetes API types.
type objects struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	pvcs            []*corev1.PersistentVolumeClaim
	pdbs            []*policyv1.PodDisruptionBudget
	serviceAccounts []*corev1.ServiceAccount
	serviceMonitors []*monitoringv1.ServiceMonitor
	networkPolicies []*networkingv1.NetworkPolicy
	notes           string
}

// decode splits the rendered files into objects and decodes each strictly
// (unknown or duplicate fields fail) into its API type.
func decode(t testing.TB, files map[string]string) *objects {
	t.Helper()
	o := &objects{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			o.notes = files[name]
			continue
		}
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(files[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			var into any
			switch tm.APIVersion + "/" + tm.Kind {
			case "apps/v1/Deployment":
				x := &appsv1.Deployment{}
				o.deployments, into = append(o.deployments, x), x
			case "v1/Service":
				x := &corev1.Service{}
				o.services, into = append(o.services, x), x
			case "v1/ConfigMap":
				x := &corev1.ConfigMap{}
				o.configMaps, into = append(o.configMaps, x), x
			case "v1/Secret":
				x := &corev1.Secret{}
				o.secrets, into = append(o.secrets, x), x
			case "v1/PersistentVolumeClaim":
				x := &corev1.PersistentVolumeClaim{}
				o.pvcs, into = append(o.pvcs, x), x
			case "policy/v1/PodDisruptionBudget":
				x := &policyv1.PodDisruptionBudget{}
				o.pdbs, into = append(o.pdbs, x), x
			case "v1/ServiceAccount":
				x := &corev1.ServiceAccount{}
				o.serviceAccounts, into = append(o.serviceAccounts, x), x
			case "monitoring.coreos.com/v1/ServiceMonitor":
				x := &monitoringv1.ServiceMonitor{}
				o.serviceMonitors, into = append(o.serviceMonitors, x), x
			case "networking.k8s.io/v1/NetworkPolicy":
				x := &networkingv1.NetworkPolicy{}
				o.networkPolicies, into = append(o.networkPolicies, x), x
			default:
				t.Fatalf("%s: unexpected object %s %s", name, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
				t.Fatalf("%s: %s does not decode strictly into the API type: %v\n%s", name, tm.Kind, err, doc)
			}
		}
	}
	return o
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func (o *objects) deployment(t testing.TB) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	if len(o.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(o.deployments))
	}
	d := o.deployments[0]
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	return d, &d.Spec.Template.Spec.Containers[0]
}

func (o *objects) configMap(t testing.TB, name string) *corev1.ConfigMap {
	t.Helper()
	for _, c := range o.configMaps {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no ConfigMap %q", name)
	return nil
}

func (o *objects) secret(name string) *corev1.Secret {
	for _, s := range o.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// TestRender renders every value set, decodes it strictly and checks the
// invariants the chart shares with the binary and with Kubernetes.
func TestRender(t *testing.T) {
	c := loadChart(t)
	help := helpEnvNames(t)
	for name, vs := range valueSets {
		t.Run(name, func(t *testing.T) {
			vals := parseValues(t, vs)
			files, err := render(c, vals, nil)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			o := decode(t, files)
			checkInvariants(t, o, vals, help)
		})
	}
}

func checkInvariants(t *testing.T, o *objects, vals map[string]any, help map[string]bool) {
	d, ctr := o.deployment(t)
	pod := d.Spec.Template.Spec
	mode := str(vals, "mode", "local")
	cm := o.configMap(t, d.Name)

	// Modes: local is one replica replaced with Recreate (two pods never
	// share the data dir) on a PVC; redis is N replicas rolled one by one.
	switch mode {
	case "local":
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Errorf("local mode replicas = %v, want 1", d.Spec.Replicas)
		}
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("local mode strategy = %q, want Recreate", d.Spec.Strategy.Type)
		}
		claim := pod.Volumes[0].PersistentVolumeClaim
		if claim == nil || len(o.pvcs) != 1 || o.pvcs[0].Name != claim.ClaimName {
			t.Errorf("local mode: /data is not the chart's PVC (volume %+v, %d PVCs)", pod.Volumes[0], len(o.pvcs))
		}
	case "redis":
		want := int32(num(vals, "replicaCount"))
		if d.Spec.Replicas == nil || *d.Spec.Replicas != want {
			t.Errorf("redis mode replicas = %v, want %d", d.Spec.Replicas, want)
		}
		if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
			t.Errorf("redis mode strategy = %q, want RollingUpdate", d.Spec.Strategy.Type)
		}
		if len(o.pvcs) != 0 || pod.Volumes[0].EmptyDir == nil {
			t.Errorf("redis mode: /data should be an emptyDir, no PVC")
		}
	}
	if cm.Data["MAXINE_REGISTRY_STATE_MODE"] != mode {
		t.Errorf("MAXINE_REGISTRY_STATE_MODE = %q, want %q", cm.Data["MAXINE_REGISTRY_STATE_MODE"], mode)
	}

	// Security: non-root 65532, read-only root, nothing extra.
	psc, sc := pod.SecurityContext, ctr.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("no securityContext")
	}
	if !isTrue(psc.RunAsNonRoot) || !isTrue(sc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("pods must run as non-root 65532: %+v %+v", psc, sc)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities = %+v, want drop [ALL]", sc.Capabilities)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile = %+v, want RuntimeDefault", psc.SeccompProfile)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it does not need")
	}
	// The data volume first; the only other mount is the TLS Secret's
	// (checkTLS).
	wantMounts := 1
	if num(vals, "tls.gateway") == 1 || num(vals, "tls.admin") == 1 {
		wantMounts = 2
	}
	if len(ctr.VolumeMounts) != wantMounts || ctr.VolumeMounts[0].MountPath != "/data" || cm.Data["MAXINE_DATA_DIR"] != "/data" {
		t.Errorf("the data dir is not the volume on /data: %+v, MAXINE_DATA_DIR=%q", ctr.VolumeMounts, cm.Data["MAXINE_DATA_DIR"])
	}

	// Ports: the container ports are the listeners' addresses.
	ports := map[string]int32{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for listener, env := range map[string]string{"admin": "MAXINE_ADMIN_ADDR", "gateway": "MAXINE_GATEWAY_ADDR"} {
		if want := fmt.Sprintf(":%d", ports[listener]); cm.Data[env] != want || ports[listener] == 0 {
			t.Errorf("%s = %q but the %s containerPort is %d", env, cm.Data[env], listener, ports[listener])
		}
	}

	// Probes: GET the binary's health endpoint on the admin port, or exec
	// the image's binary `health` (which probes that endpoint).
	for name, p := range map[string]*corev1.Probe{"startup": ctr.StartupProbe, "liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
		switch {
		case p == nil:
			t.Errorf("no %s probe", name)
		case p.HTTPGet != nil:
			if p.HTTPGet.Path != healthPath || p.HTTPGet.Port != intstr.FromString("admin") {
				t.Errorf("%s probe GET %s on %v, want %s on the admin port", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), healthPath)
			}
		case p.Exec != nil:
			if len(p.Exec.Command) < 2 || p.Exec.Command[0] != binPath || p.Exec.Command[1] != "health" {
				t.Errorf("%s probe exec %q, want [%s health ...]", name, p.Exec.Command, binPath)
			}
		default:
			t.Errorf("%s probe neither GETs the health endpoint nor runs maxine health: %+v", name, p)
		}
	}
	if mode == "redis" && ctr.LivenessProbe.Exec == nil {
		t.Error("redis mode liveness must not follow Redis's reachability (it would restart every pod in an outage)")
	}
	if mode == "local" && ctr.ReadinessProbe.HTTPGet == nil {
		t.Error("local mode readiness should GET the health endpoint")
	}

	// Environment: every name is one `maxine --help` lists; POD_IP only
	// feeds $(POD_IP) in the advertised addresses.
	names := map[string]bool{}
	for k := range cm.Data {
		names[k] = true
	}
	var expanded []string
	for _, e := range ctr.Env {
		if names[e.Name] && e.Name != "POD_IP" {
			t.Errorf("%s is set twice (ConfigMap and env)", e.Name)
		}
		names[e.Name] = true
		if strings.Contains(e.Value, "$(POD_IP)") {
			expanded = append(expanded, e.Name)
		}
	}
	for n := range names {
		if n == "POD_IP" {
			if mode != "redis" || len(expanded) != 2 {
				t.Errorf("POD_IP set but used by %v", expanded)
			}
			continue
		}
		if !help[n] {
			t.Errorf("the chart sets %s, which `maxine --help` does not list", n)
		}
	}
	if mode == "redis" {
		for _, n := range []string{"MAXINE_ADVERTISE_ADMIN_ADDR", "MAXINE_INSTANCE_ID", "MAXINE_LEADER_LEASE", "MAXINE_LEADER_RENEW", "MAXINE_JWT_SECRET", "MAXINE_ADMIN_USERNAME", "MAXINE_ADMIN_PASSWORD"} {
			if !names[n] {
				t.Errorf("redis mode does not set %s (every instance of a cluster needs it)", n)
			}
		}
	}

	// Secrets: every reference resolves (the generated Secret has the
	// key, or the user's Secret is named); a registration token is on by
	// default.
	existing := str(vals, "auth.existingSecret", "")
	gen := o.secret(d.Name)
	if (existing == "") != (gen != nil) {
		t.Errorf("generated Secret present = %v with existingSecret %q", gen != nil, existing)
	}
	for _, e := range ctr.Env {
		ref := e.ValueFrom
		if ref == nil || ref.SecretKeyRef == nil {
			continue
		}
		k := ref.SecretKeyRef
		switch {
		case existing != "" && k.Name != existing:
			t.Errorf("%s reads Secret %q, not the existingSecret %q", e.Name, k.Name, existing)
		case existing == "" && (k.Name != d.Name || (len(gen.Data[k.Key]) == 0 && !isTrue(k.Optional))):
			t.Errorf("%s reads %s/%s, which the generated Secret does not hold", e.Name, k.Name, k.Key)
		}
	}
	if !names["MAXINE_REGISTRATION_TOKEN"] {
		t.Error("no registration token by default")
	}
	if envFrom := ctr.EnvFrom; len(envFrom) != 1 || envFrom[0].ConfigMapRef == nil || envFrom[0].ConfigMapRef.Name != cm.Name {
		t.Errorf("envFrom = %+v, want the ConfigMap %s", envFrom, cm.Name)
	}

	// Services: one per listener, aimed at the named container ports.
	if len(o.services) != 2 {
		t.Fatalf("%d Services, want 2 (gateway, admin)", len(o.services))
	}
	for _, s := range o.services {
		tp := s.Spec.Ports[0].TargetPort.StrVal
		if ports[tp] == 0 || !selects(s.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("Service %s targets port %q or selects %v, which the pods do not have", s.Name, tp, s.Spec.Selector)
		}
	}
	if len(o.pdbs) != 1 || !selects(o.pdbs[0].Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget missing or not selecting the pods")
	}

	checkTLS(t, o, vals)

	// ServiceMonitor: scrapes the public /metrics the chart turns on.
	if num(vals, "serviceMonitor.enabled") == 1 {
		if len(o.serviceMonitors) != 1 {
			t.Fatal("serviceMonitor.enabled but no ServiceMonitor")
		}
		ep := o.serviceMonitors[0].Spec.Endpoints[0]
		if ep.Port != "admin" || ep.Path != "/metrics" || cm.Data["MAXINE_PUBLIC_METRICS"] != "true" {
			t.Errorf("ServiceMonitor scrapes %s on %s with MAXINE_PUBLIC_METRICS=%q", ep.Path, ep.Port, cm.Data["MAXINE_PUBLIC_METRICS"])
		}
		var admin *corev1.Service
		for _, s := range o.services {
			if strings.HasSuffix(s.Name, "-admin") {
				admin = s
			}
		}
		if admin == nil || !selects(o.serviceMonitors[0].Spec.Selector.MatchLabels, admin.Labels) {
			t.Error("the ServiceMonitor does not select the admin Service")
		}
	} else if len(o.serviceMonitors) != 0 {
		t.Error("a ServiceMonitor although it is off")
	}
	if !strings.Contains(o.notes, "port-forward") {
		t.Error("NOTES.txt did not render")
	}
}

// checkTLS: each TLS listener the values turn on has its container port,
// its MAXINE_*_TLS_* env pointing into the read-only mount of the
// values' Secret, its Service port and its NetworkPolicy port; a listener
// that is off has none of them.
func checkTLS(t *testing.T, o *objects, vals map[string]any) {
	t.Helper()
	d, ctr := o.deployment(t)
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	mount := ""
	for _, m := range ctr.VolumeMounts {
		if m.Name == "tls" {
			mount = m.MountPath
			if !m.ReadOnly {
				t.Error("the TLS Secret is mounted writable")
			}
		}
	}
	anyOn := false
	for _, l := range []struct{ name, env, port string }{{"gateway", "GATEWAY", "gatewayTLS"}, {"admin", "ADMIN", "adminTLS"}} {
		on := num(vals, "tls."+l.name) == 1
		anyOn = anyOn || on
		var cport int32
		for _, p := range ctr.Ports {
			if p.Name == l.name+"-tls" {
				cport = p.ContainerPort
			}
		}
		addr := env["MAXINE_"+l.env+"_TLS_ADDR"]
		if !on {
			if cport != 0 || addr != "" {
				t.Errorf("%s TLS is off but the pod has port %d, addr %q", l.name, cport, addr)
			}
			continue
		}
		want := int32(8443)
		if l.name == "admin" {
			want = 8444
		}
		if cport != want || addr != fmt.Sprintf(":%d", want) {
			t.Errorf("%s TLS: container port %d, MAXINE_%s_TLS_ADDR %q, want %d", l.name, cport, l.env, addr, want)
		}
		for _, f := range []string{"CERT", "KEY"} {
			if v := env["MAXINE_"+l.env+"_TLS_"+f+"_FILE"]; mount == "" || !strings.HasPrefix(v, mount+"/") {
				t.Errorf("MAXINE_%s_TLS_%s_FILE %q is not in the TLS mount %q", l.env, f, v, mount)
			}
		}
		found := false
		for _, s := range o.services {
			if !strings.HasSuffix(s.Name, "-"+l.name) {
				continue
			}
			for _, sp := range s.Spec.Ports {
				if sp.Name == l.name+"-tls" && sp.TargetPort.String() == l.name+"-tls" {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("the %s Service has no %s-tls port", l.name, l.name)
		}
		if len(o.networkPolicies) == 1 {
			allowed := false
			for _, r := range o.networkPolicies[0].Spec.Ingress {
				for _, p := range r.Ports {
					if p.Port != nil && p.Port.String() == l.name+"-tls" {
						allowed = true
					}
				}
			}
			if !allowed {
				t.Errorf("the NetworkPolicy does not admit %s-tls", l.name)
			}
		}
	}
	var secretName string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "tls" && v.Secret != nil {
			secretName = v.Secret.SecretName
		}
	}
	if want := str(vals, "tls.secretName", ""); anyOn && (mount == "" || secretName != want) || !anyOn && (mount != "" || secretName != "") {
		t.Errorf("TLS volume: mount %q from Secret %q (listeners on: %v, tls.secretName %q)", mount, secretName, anyOn, want)
	}
}

// TestSchemaRefuses: bad values fail at install, naming the value.
func TestSchemaRefuses(t *testing.T) {
	c := loadChart(t)
	for name, tc := range map[string]struct{ values, mentions string }{
		"unknown mode":              {"mode: cluster", "mode"},
		"local with replicas":       {"replicaCount: 3", "replicaCount"},
		"redis without a redis":     {"mode: redis\nreplicaCount: 3", ""},
		"sentinel without addrs":    {"mode: redis\nredis: {sentinel: {master: m}}", "addrs"},
		"sentinel addrs no master":  {"mode: redis\nredis: {url: 'redis://r:6379', sentinel: {addrs: ['s:26379']}}", "addrs"},
		"setting --help lacks":      {"config: {MAXINE_NO_SUCH_SETTING: x}", "MAXINE_NO_SUCH_SETTING"},
		"chart-managed setting":     {"config: {MAXINE_ADMIN_ADDR: ':1'}", "MAXINE_ADMIN_ADDR"},
		"port zero":                 {"ports: {admin: 0, gateway: 8000}", "admin"},
		"bad duration":              {"leader: {lease: 10 seconds}", "lease"},
		"bad pull policy":           {"image: {repository: x, pullPolicy: Sometimes}", "pullPolicy"},
		"unknown top-level key":     {"replicas: 2", "replicas"},
		"redis url scheme":          {"mode: redis\nredis: {url: 'http://r:6379'}", "url"},
		"readiness choice":          {"probes: {redisOutage: maybe}", "redisOutage"},
		"config value not a scalar": {"config: {MAXINE_LOG_LEVEL: [debug]}", "MAXINE_LOG_LEVEL"},
		"TLS without a Secret":      {"tls: {admin: true}", "secretName"},
		"TLS address in config":     {"config: {MAXINE_GATEWAY_TLS_ADDR: ':8443'}", "MAXINE_GATEWAY_TLS_ADDR"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render(c, parseValues(t, tc.values), nil)
			if err == nil {
				t.Fatalf("values %q were accepted", tc.values)
			}
			if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), tc.mentions) {
				t.Errorf("error does not come from the schema or does not name %q: %v", tc.mentions, err)
			}
		})
	}
}

// TestSchemaCoversHelp: the config map accepts exactly the settings
// `maxine --help` lists that the chart does not set itself.
func TestSchemaCoversHelp(t *testing.T) {
	help := helpEnvNames(t)
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Config struct {
				Properties map[string]any `json:"properties"`
			} `json:"config"`
		} `json:"properties"`
	}
	if err := yaml.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	allowed := schema.Properties.Config.Properties
	for n := range allowed {
		if !help[n] {
			t.Errorf("values.schema.json allows config.%s, which `maxine --help` does not list", n)
		}
		if chartManaged[n] {
			t.Errorf("config.%s is set by the chart itself; the schema must not allow it", n)
		}
	}
	for n := range help {
		if _, ok := allowed[n]; !ok && !chartManaged[n] {
			t.Errorf("`maxine --help` lists %s but the chart cannot set it: add it to properties.config.properties in charts/maxine/values.schema.json (and to the chart README), or to chartManaged in charts/test if the chart sets it itself", n)
		}
	}
}

// chartManaged are the settings the chart sets from its own values (or
// that do not apply in a pod); the rest go through .Values.config.
var chartManaged = map[string]bool{
	"PORT": true, "MAXINE_ADMIN_ADDR": true, "MAXINE_GATEWAY_ADDR": true, "MAXINE_DATA_DIR": true,
	"MAXINE_REGISTRY_STATE_MODE": true, "MAXINE_REGISTRY_REDIS_URL": true, "MAXINE_REGISTRY_REDIS_KEY_PREFIX": true,
	"MAXINE_REDIS_SENTINEL_MASTER": true, "MAXINE_REDIS_SENTINEL_ADDRS": true, "MAXINE_REDIS_SENTINEL_PASSWORD": true,
	"MAXINE_REDIS_MIN_REPLICAS": true, "MAXINE_INSTANCE_ID": true, "MAXINE_ADVERTISE_ADMIN_ADDR": true,
	"MAXINE_ADVERTISE_GATEWAY_ADDR": true, "MAXINE_LEADER_LEASE": true, "MAXINE_LEADER_RENEW": true,
	"MAXINE_JWT_SECRET": true, "MAXINE_JWT_PREVIOUS_SECRETS": true, "MAXINE_ADMIN_USERNAME": true,
	"MAXINE_ADMIN_PASSWORD": true, "MAXINE_OPERATOR_USERNAME": true, "MAXINE_OPERATOR_PASSWORD": true,
	"MAXINE_VIEWER_USERNAME": true, "MAXINE_VIEWER_PASSWORD": true, "MAXINE_REGISTRATION_TOKEN": true,
	// shared-file mode needs storage shared by several pods; the chart
	// offers local and redis.
	"MAXINE_SHARED_STATE_FILE": true, "MAXINE_SHARED_POLL_INTERVAL": true,
	// the TLS listeners: from tls.* and the mounted Secret.
	"MAXINE_GATEWAY_TLS_ADDR": true, "MAXINE_GATEWAY_TLS_CERT_FILE": true, "MAXINE_GATEWAY_TLS_KEY_FILE": true,
	"MAXINE_ADMIN_TLS_ADDR": true, "MAXINE_ADMIN_TLS_CERT_FILE": true, "MAXINE_ADMIN_TLS_KEY_FILE": true,
}

// TestLint runs Helm's linter on every value set.
func TestLint(t *testing.T) {
	for name, vs := range valueSets {
		t.Run(name, func(t *testing.T) {
			l := lint.All(chartDir, parseValues(t, vs), namespace, false)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestREADMEValues: every value in values.yaml is in the README's table.
func TestREADMEValues(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	c := loadChart(t)
	var keys []string
	leafKeys("", c.Values, &keys)
	for _, k := range keys {
		if !bytes.Contains(readme, []byte("`"+k+"`")) {
			t.Errorf("values key %s is not in charts/maxine/README.md", k)
		}
	}
}

// documentedWhole are maps the README describes as one row.
var documentedWhole = map[string]bool{"config": true, "resources": true, "podSecurityContext": true, "securityContext": true,
	"probes.liveness": true, "probes.readiness": true, "probes.startup": true}

func leafKeys(prefix string, m map[string]any, out *[]string) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !documentedWhole[key] {
			leafKeys(key, sub, out)
			continue
		}
		*out = append(*out, key)
	}
}

// TestDockerfileEntrypoint: the exec probes run the binary where the image
// keeps it.
func TestDockerfileEntrypoint(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`ENTRYPOINT ["%s"]`, binPath)
	if !bytes.Contains(df, []byte(want)) {
		t.Errorf("the Dockerfile has no %s", want)
	}
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func isTrue(b *bool) bool { return b != nil && *b }

// lookup finds a dotted key in values.
func lookup(vals map[string]any, key string) (any, bool) {
	var cur any = vals
	for _, p := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func str(vals map[string]any, key, def string) string {
	if v, ok := lookup(vals, key); ok {
		if s, ok := v.(string); ok {
			return s
		}
	}
	return def
}

// num reads a number or a boolean (1/0) from the values.
func num(vals map[string]any, key string) float64 {
	v, _ := lookup(vals, key)
	switch x := v.(type) {
	case bool:
		if x {
			return 1
		}
	case float64:
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case fmt.Stringer:
		var f float64
		fmt.Sscan(x.String(), &f)
		return f
	}
	return 0
}
