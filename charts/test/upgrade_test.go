package test

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/fake"
)

// secretsOf answers Helm's lookup from a set of existing Secrets, as the
// API server does during `helm upgrade` (client-go's in-memory dynamic
// client: no cluster runs here).
type secretsOf struct{ client *fake.FakeDynamicClient }

func (s secretsOf) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	return s.client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}), true, nil
}

// TestGeneratedSecretKeptOnUpgrade: the generated credentials are random
// on install and the same on every upgrade (rotating them would log every
// user out and break every registering service).
func TestGeneratedSecretKeptOnUpgrade(t *testing.T) {
	c := loadChart(t)
	vals := parseValues(t, "auth: {operator: {username: ops}}")
	first, err := render(c, vals, nil)
	if err != nil {
		t.Fatal(err)
	}
	installed := decode(t, first)
	d, _ := installed.deployment(t)
	old := installed.secret(d.Name)
	for _, k := range []string{"jwt-secret", "admin-password", "registration-token", "operator-password"} {
		if len(old.Data[k]) < 20 {
			t.Errorf("generated %s is %q: too short", k, old.Data[k])
		}
	}

	// A second install (no Secret yet) draws new values.
	again, err := render(c, vals, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fresh := decode(t, again).secret(d.Name); bytes.Equal(fresh.Data["jwt-secret"], old.Data["jwt-secret"]) {
		t.Error("two installs drew the same JWT secret")
	}

	// An upgrade, with the installed Secret in the namespace, keeps them.
	live := old.DeepCopy()
	live.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
	live.Namespace = namespace
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	upgraded, err := render(c, vals, secretsOf{fake.NewSimpleDynamicClient(scheme, live)})
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, upgraded).secret(d.Name)
	for k, v := range old.Data {
		if !bytes.Equal(got.Data[k], v) {
			t.Errorf("upgrade changed %s", k)
		}
	}

	// A value set explicitly wins over the kept one.
	vals = parseValues(t, "auth: {adminPassword: chosen-password, operator: {username: ops}}")
	upgraded, err = render(c, vals, secretsOf{fake.NewSimpleDynamicClient(scheme, live)})
	if err != nil {
		t.Fatal(err)
	}
	if got := decode(t, upgraded).secret(d.Name); string(got.Data["admin-password"]) != "chosen-password" || !bytes.Equal(got.Data["jwt-secret"], old.Data["jwt-secret"]) {
		t.Errorf("explicit adminPassword not applied, or other keys not kept")
	}
}
