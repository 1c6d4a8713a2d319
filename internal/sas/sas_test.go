package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/common"
)

const testKey = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY=" // base64("secret-key-for-tests-only-123456")

func TestParseConnectionStringService(t *testing.T) {
	c, err := ParseConnectionString("HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	if c.HostName != "myhub.azure-devices.net" || c.SharedAccessKeyName != "iothubowner" || c.SharedAccessKey != testKey || c.DeviceID != "" {
		t.Fatalf("parsed %+v", c)
	}
	if got := c.Redacted(); got != "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=<redacted>" {
		t.Fatalf("Redacted = %q", got)
	}
	if got := c.String(); got != "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey="+testKey {
		t.Fatalf("String = %q", got)
	}
	if c.Resource() != "myhub.azure-devices.net" {
		t.Fatalf("Resource = %q", c.Resource())
	}
}

func TestParseConnectionStringDevice(t *testing.T) {
	// Field names are matched case-insensitively; order is free; whitespace and a trailing ';' are tolerated.
	c, err := ParseConnectionString(" deviceid=door-1; HostName=localhost:8443;SharedAccessKey=" + testKey + ";moduleId=m1;")
	if err != nil {
		t.Fatal(err)
	}
	if c.HostName != "localhost:8443" || c.DeviceID != "door-1" || c.ModuleID != "m1" || c.SharedAccessKeyName != "" {
		t.Fatalf("parsed %+v", c)
	}
	if c.Resource() != "localhost:8443/devices/door-1/modules/m1" {
		t.Fatalf("Resource = %q", c.Resource())
	}
	if got := c.String(); got != "HostName=localhost:8443;DeviceId=door-1;ModuleId=m1;SharedAccessKey="+testKey {
		t.Fatalf("String = %q", got)
	}
}

func TestParseConnectionStringErrorsNeverLeak(t *testing.T) {
	secret := "U0VDUkVULVNFQ1JFVC1TRUNSRVQ="
	cases := []struct{ in, want string }{
		{"", "empty"},
		{"SharedAccessKeyName=x;SharedAccessKey=" + secret, "HostName is missing"},
		{"HostName=h;SharedAccessKeyName=x", "SharedAccessKey is missing"},
		{"HostName=h;SharedAccessKey=" + secret, "needs SharedAccessKeyName"},
		{"HostName=h;SharedAccessKeyName=x;SharedAccessKey=not*base64" + secret, "not valid base64"},
		{"HostName=h;SharedAccessKeyName=x;" + secret, "field 3"}, // key pasted without its name
		{"HostName=h;SharedAccessKeyName=x;Foo" + secret + "=1", "field 3 has an unknown name"},
		{"HostName=h;SharedAccessKeyName=x;SharedAccessKey=" + secret + ";SharedAccessKey=" + secret, "more than once"},
		{"HostName=https://h/;SharedAccessKeyName=x;SharedAccessKey=" + secret, "not a URL"},
		{"HostName=h;ModuleId=m;SharedAccessKeyName=x;SharedAccessKey=" + secret, "ModuleId needs DeviceId"},
		{"HostName=h;SharedAccessKeyName=;SharedAccessKey=" + secret, "SharedAccessKeyName is empty"},
	}
	for _, tc := range cases {
		_, err := ParseConnectionString(tc.in)
		if err == nil {
			t.Errorf("%q: no error", tc.in)
			continue
		}
		if !errors.Is(err, ErrConnectionString) {
			t.Errorf("%q: %v is not ErrConnectionString", tc.in, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%q: error %q does not contain %q", tc.in, msg, tc.want)
		}
		if strings.Contains(msg, secret) || strings.Contains(msg, secret[:8]) || strings.Contains(msg, "\n") {
			t.Errorf("%q: error leaks the key or spans lines: %q", tc.in, msg)
		}
		if tc.in != "" && strings.Contains(msg, tc.in) {
			t.Errorf("error echoes the raw string: %q", msg)
		}
	}
}

// The token must be byte-identical to what the Go SDK (amenzhinsky) makes, and verify both ways.
func TestNewTokenMatchesGoSDK(t *testing.T) {
	exp := time.Unix(1795628194, 0)
	for _, tc := range []struct{ resource, policy string }{
		{"myhub.azure-devices.net", "iothubowner"},
		{"localhost:8443", "service"},
		{"localhost/devices/door 1", ""},
	} {
		got, err := NewToken(tc.resource, testKey, tc.policy, exp)
		if err != nil {
			t.Fatal(err)
		}
		want, err := common.NewSharedAccessSignature(tc.resource, tc.policy, testKey, exp)
		if err != nil {
			t.Fatal(err)
		}
		if got != want.String() {
			t.Errorf("NewToken(%q) =\n %s\nSDK:\n %s", tc.resource, got, want.String())
		}
		tok, err := ParseToken(got)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Resource != tc.resource || tok.KeyName != tc.policy || !tok.Expiry.Equal(exp) {
			t.Errorf("ParseToken = %+v", tok)
		}
		if err := tok.Verify(exp.Add(-time.Minute), testKey); err != nil {
			t.Errorf("Verify(%q): %v", tc.resource, err)
		}
	}
}

// A fixed vector computed independently of sign(): HMAC over "<sr as sent>\n<se>".
func TestVerifyFixedVector(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString(testKey)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("localhost%2Fdevices%2FmyDeviceId\n1795628194"))
	sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
	// Node's device token layout: sr already encoded, sig encoded, field order sr,sig,se.
	hdr := "SharedAccessSignature sr=localhost%2Fdevices%2FmyDeviceId&sig=" + url.QueryEscape(sig) + "&se=1795628194"
	tok, err := ParseToken(hdr)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Resource != "localhost/devices/myDeviceId" || tok.RawResource != "localhost%2Fdevices%2FmyDeviceId" || tok.KeyName != "" {
		t.Fatalf("parsed %+v", tok)
	}
	if err := tok.Verify(time.Unix(1795628000, 0), testKey); err != nil {
		t.Fatal(err)
	}
	// The same signature sent unescaped (raw '+' and '/') still verifies.
	tok2, err := ParseToken("SharedAccessSignature sr=localhost%2Fdevices%2FmyDeviceId&sig=" + sig + "&se=1795628194")
	if err != nil {
		t.Fatal(err)
	}
	if err := tok2.Verify(time.Unix(1795628000, 0), testKey); err != nil {
		t.Fatalf("unescaped sig: %v", err)
	}
}

func TestParseTokenAnyFieldOrder(t *testing.T) {
	exp := time.Unix(2000000000, 0)
	hdr, _ := NewToken("hub.example", testKey, "service", exp)
	fields := strings.Split(strings.TrimPrefix(hdr, TokenPrefix), "&") // sr, sig, se, skn
	orders := [][]int{{0, 1, 2, 3}, {0, 1, 3, 2}, {1, 2, 3, 0}, {3, 2, 1, 0}}
	for _, o := range orders {
		var parts []string
		for _, i := range o {
			parts = append(parts, fields[i])
		}
		h := TokenPrefix + strings.Join(parts, "&")
		tok, err := ParseToken(h)
		if err != nil {
			t.Fatalf("%v: %v", o, err)
		}
		if tok.KeyName != "service" || tok.Resource != "hub.example" {
			t.Fatalf("%v: %+v", o, tok)
		}
		if err := tok.Verify(exp.Add(-time.Hour), testKey); err != nil {
			t.Fatalf("%v: %v", o, err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	exp := time.Unix(2000000000, 0)
	hdr, _ := NewToken("hub.example", testKey, "service", exp)
	tok, _ := ParseToken(hdr)
	if err := tok.Verify(exp, testKey); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
	if err := tok.Verify(exp.Add(time.Second), testKey); !errors.Is(err, ErrExpired) {
		t.Errorf("after expiry: %v, want ErrExpired", err)
	}
	other := base64.StdEncoding.EncodeToString([]byte("another key entirely"))
	if err := tok.Verify(exp.Add(-time.Hour), other); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong key: %v, want ErrSignature", err)
	}
	// A forged token is forged even once it has expired: the signature is checked first.
	if err := tok.Verify(exp.Add(time.Hour), other); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong key, expired: %v, want ErrSignature", err)
	}
	// Tampering with any signed field breaks the signature.
	for _, h := range []string{
		strings.Replace(hdr, "se=2000000000", "se=2000000001", 1),
		strings.Replace(hdr, "sr=hub.example", "sr=hub.exampl", 1),
	} {
		tk, err := ParseToken(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := tk.Verify(exp.Add(-time.Hour), testKey); !errors.Is(err, ErrSignature) {
			t.Errorf("tampered token %s: %v, want ErrSignature", h, err)
		}
	}
}

// Verify tries every key it is given (primary, then secondary); the answer names the check
// that failed for the key that signed the token, whatever the other key says.
func TestVerifyKeys(t *testing.T) {
	exp := time.Unix(2000000000, 0)
	other := base64.StdEncoding.EncodeToString([]byte("another key entirely"))
	hdr, _ := NewToken("hub.example", testKey, "service", exp)
	tok, _ := ParseToken(hdr)
	before, after := exp.Add(-time.Hour), exp.Add(time.Hour)
	cases := []struct {
		name string
		now  time.Time
		keys []string
		want error
	}{
		{"primary signed", before, []string{testKey, other}, nil},
		{"secondary signed", before, []string{other, testKey}, nil},
		{"secondary signed, expired", after, []string{other, testKey}, ErrExpired},
		{"primary signed, expired", after, []string{testKey, other}, ErrExpired},
		{"no secondary set", before, []string{other, ""}, ErrSignature},
		{"neither signed", before, []string{other, other}, ErrSignature},
		{"no key set", before, []string{"", ""}, ErrNoKey},
		{"no keys", before, nil, ErrNoKey},
		{"undecodable primary, secondary signed", before, []string{"not*base64", testKey}, nil},
		{"undecodable keys only", before, []string{"not*base64"}, ErrNoKey},
	}
	for _, c := range cases {
		err := tok.Verify(c.now, c.keys...)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestParseTokenErrors(t *testing.T) {
	for _, h := range []string{
		"",
		"Bearer abc",
		"SharedAccessSignature sig=abc&se=1",
		"SharedAccessSignature sr=h&se=1",
		"SharedAccessSignature sr=h&sig=abc",
		"SharedAccessSignature sr=h&sig=abc&se=soon",
		"SharedAccessSignature sr=h&sig=abc&se=1&se=2",
		"SharedAccessSignature sr=h&sig&se=1",
		"SharedAccessSignature sr=%zz&sig=abc&se=1",
	} {
		if _, err := ParseToken(h); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseToken(%q): %v, want ErrMalformed", h, err)
		}
	}
	if _, err := ParseToken("sharedaccesssignature sr=h&sig=abc&se=1"); err != nil {
		t.Errorf("prefix should be case-insensitive: %v", err)
	}
}

func TestScopeCovers(t *testing.T) {
	cases := []struct {
		token, req string
		want       bool
	}{
		{"myhub.azure-devices.net", "myhub.azure-devices.net", true},
		{"myhub.azure-devices.net", "myhub.azure-devices.net/devices/d1", true},
		{"MyHub.Azure-Devices.NET", "myhub.azure-devices.net/devices/d1", true},
		{"myhub.azure-devices.net/devices/d1", "myhub.azure-devices.net/devices/d1", true},
		{"myhub.azure-devices.net/devices/d1", "myhub.azure-devices.net/devices/d1/modules/m", true},
		{"myhub.azure-devices.net/devices/d1/", "myhub.azure-devices.net/devices/d1", true},
		{"https://myhub.azure-devices.net/devices", "myhub.azure-devices.net/devices/d1", true},
		{"myhub.azure-devices.net/devices/d1", "myhub.azure-devices.net/devices/d10", false},
		{"myhub.azure-devices.net/devices/d1", "myhub.azure-devices.net/devices/D1", false},
		{"myhub.azure-devices.net/devices/d1", "myhub.azure-devices.net/devices", false},
		{"myhub.azure-devices.net/devices/d1", "myhub.azure-devices.net", false},
		{"otherhub.azure-devices.net", "myhub.azure-devices.net/devices/d1", false},
		{"myhub", "myhub.azure-devices.net", false},
		{"localhost:8443", "localhost:8443/twins/x", true},
		{"localhost", "localhost:8443/twins/x", false},
		{"", "localhost", false},
	}
	for _, tc := range cases {
		if got := ScopeCovers(tc.token, tc.req); got != tc.want {
			t.Errorf("ScopeCovers(%q, %q) = %v, want %v", tc.token, tc.req, got, tc.want)
		}
	}
}

func TestConnectionStringToken(t *testing.T) {
	c := ConnectionString{HostName: "localhost", DeviceID: "d1", SharedAccessKey: testKey}
	h, err := c.Token(time.Unix(2000000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken(h)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Resource != "localhost/devices/d1" || tok.KeyName != "" {
		t.Fatalf("%+v", tok)
	}
	if err := tok.Verify(time.Unix(1999999999, 0), testKey); err != nil {
		t.Fatal(err)
	}
	if _, err := NewToken("h", "***", "", time.Now()); !errors.Is(err, ErrKey) || strings.Contains(err.Error(), "***") {
		t.Fatalf("bad key: %v", err)
	}
}
