package cloudconfig

import (
	"reflect"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

const good = `
home: 10.0.0.1
ssh: {user: root, key: /etc/de/keys/root}
azs:
- name: z1
  machines: [10.0.0.5, 10.0.0.6]
- name: z2
  machines: [{ip: 10.0.0.7, user: admin, key: /etc/de/keys/z2}]
disks: {10.0.0.5: /dev/vdb}
`

// The shape reads as written, and its JSON twin the same.
func TestParseGood(t *testing.T) {
	want := contract.CloudConfig{Home: "10.0.0.1", SSH: contract.CloudSSH{User: "root", Key: "/etc/de/keys/root"},
		AZs: []contract.CloudAZ{
			{Name: "z1", Machines: []contract.CloudMachine{{IP: "10.0.0.5"}, {IP: "10.0.0.6"}}},
			{Name: "z2", Machines: []contract.CloudMachine{{IP: "10.0.0.7", User: "admin", Key: "/etc/de/keys/z2"}}},
		},
		Disks: map[string]string{"10.0.0.5": "/dev/vdb"}}
	for _, in := range []string{good, `{"home": "10.0.0.1", "ssh": {"user": "root", "key": "/etc/de/keys/root"},
		"azs": [{"name": "z1", "machines": ["10.0.0.5", "10.0.0.6"]}, {"name": "z2", "machines": [{"ip": "10.0.0.7", "user": "admin", "key": "/etc/de/keys/z2"}]}],
		"disks": {"10.0.0.5": "/dev/vdb"}}`} {
		got, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	}
	m, ok := Machine(want, "10.0.0.6")
	if !ok || m.User != "root" || m.Key != "/etc/de/keys/root" {
		t.Fatalf("machine 10.0.0.6 takes the cloud config's login: %+v", m)
	}
}

// What is wrong is refused naming the field, and the reason says why.
func TestParseRefused(t *testing.T) {
	for _, tc := range []struct{ name, in, path, reason string }{
		{"empty", ``, "", "empty"},
		{"not yaml", "home: [", "", "not YAML"},
		{"two documents", "home: 10.0.0.1\n---\nhome: 10.0.0.2\n", "", "more than one"},
		{"a list", "- 1\n", "", "want a map"},
		{"unknown key", "home: 10.0.0.1\nnetworks: []\nazs: [{name: z1}]\n", "networks", "unknown key"},
		{"unknown ssh key", "home: 10.0.0.1\nssh: {user: root, password: x}\nazs: [{name: z1}]\n", "ssh.password", "unknown key"},
		{"bad home", "home: nowhere\nazs: [{name: z1}]\n", "home", "not a machine's IPv4"},
		{"no home", "azs: [{name: z1}]\n", "home", "want an IPv4"},
		{"ipv6 machine", "home: 10.0.0.1\nazs: [{name: z1, machines: ['::1']}]\n", "azs[0].machines[0]", "IPv4"},
		{"bad machine", "home: 10.0.0.1\nazs: [{name: z1, machines: [10.0.0.300]}]\n", "azs[0].machines[0]", "IPv4"},
		{"machine in two zones", "home: 10.0.0.1\nazs: [{name: z1, machines: [10.0.0.5]}, {name: z2, machines: [10.0.0.5]}]\n",
			"azs[1].machines[0]", "in zone z1 too"},
		{"zone twice", "home: 10.0.0.1\nazs: [{name: z1}, {name: z1}]\n", "azs[1].name", "listed twice"},
		{"zone name", "home: 10.0.0.1\nazs: [{name: 'z 1'}]\n", "azs[0].name", "not a zone name"},
		{"long zone name", "home: 10.0.0.1\nazs: [{name: " + strings.Repeat("z", 64) + "}]\n", "azs[0].name", "not a zone name"},
		{"no zones", "home: 10.0.0.1\nazs: []\n", "azs", "at least one"},
		{"unknown machine key", "home: 10.0.0.1\nazs: [{name: z1, machines: [{ip: 10.0.0.5, port: 22}]}]\n", "azs[0].machines[0].port", "unknown key"},
		{"key is PEM", "home: 10.0.0.1\nssh: {key: '-----BEGIN RSA PRIVATE KEY-----'}\nazs: [{name: z1}]\n", "ssh.key", "holds no key"},
		{"bad user", "home: 10.0.0.1\nssh: {user: 'Root;rm'}\nazs: [{name: z1}]\n", "ssh.user", "not a user name"},
		{"disk of no machine", "home: 10.0.0.1\nazs: [{name: z1, machines: [10.0.0.5]}]\ndisks: {10.0.0.6: /dev/vdb}\n", "disks.10.0.0.6", "in no zone"},
		{"disk not a device", "home: 10.0.0.1\nazs: [{name: z1, machines: [10.0.0.5]}]\ndisks: {10.0.0.5: vdb}\n", "disks.10.0.0.5", "device"},
		{"machines not a list", "home: 10.0.0.1\nazs: [{name: z1, machines: 10.0.0.5}]\n", "azs[0].machines", "want a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			ce, ok := err.(*Error)
			if !ok {
				t.Fatalf("want a *Error, got %v", err)
			}
			if ce.Path != tc.path || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("got %q: %q; want %q: …%s…", ce.Path, ce.Reason, tc.path, tc.reason)
			}
		})
	}
}
